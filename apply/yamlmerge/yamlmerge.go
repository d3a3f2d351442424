// Package yamlmerge lays a YAML map over the documents of a YAML file, as
// sealer's two merge strategies do: a Config's (keys the file lacks are
// not added) and an Application file's (mergo's deep merge: they are).
package yamlmerge

import (
	"bytes"
	"fmt"
	"sort"

	"sigs.k8s.io/yaml"
)

// Missing says what becomes of a key the map has and a document lacks.
type Missing bool

const (
	// KeepMissing leaves it out: sealer's Config merge.
	KeepMissing Missing = false
	// AddMissing adds it: sealer's Application file merge.
	AddMissing Missing = true
)

// Overlay lays the YAML map over each document of current: a key both
// have takes the map's value, maps merged key by key, anything else
// (lists included) replaced. Empty documents are dropped; the documents
// are written back sorted by key, as YAML from a map is.
func Overlay(current, over []byte, missing Missing) ([]byte, error) {
	var patch map[string]any
	if err := yaml.Unmarshal(over, &patch); err != nil {
		return nil, fmt.Errorf("the data is not a YAML map: %w", err)
	}
	var docs [][]byte
	for i, raw := range bytes.Split(current, []byte("---\n")) {
		var doc map[string]any
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("document %d of the image's file: %w", i+1, err)
		}
		if len(doc) == 0 {
			continue
		}
		mergeInto(doc, patch, missing)
		out, err := yaml.Marshal(doc)
		if err != nil {
			return nil, err
		}
		docs = append(docs, out)
	}
	return bytes.Join(docs, []byte("---\n")), nil
}

func mergeInto(dst, src map[string]any, missing Missing) {
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d, ok := dst[k]
		if !ok {
			if missing == AddMissing {
				dst[k] = src[k]
			}
			continue
		}
		dm, dIsMap := d.(map[string]any)
		sm, sIsMap := src[k].(map[string]any)
		switch {
		case dIsMap && sIsMap:
			mergeInto(dm, sm, missing)
		case !dIsMap:
			dst[k] = src[k]
		}
	}
}
