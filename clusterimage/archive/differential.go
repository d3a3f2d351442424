package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"unicode"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// A differential archive (hoist save --since OLD) is an oci-archive whose
// manifest lists every layer of the image, but which holds only what OLD
// lacks. The file DifferentialFile names OLD, the layers left out (OLD has
// them), and the layers held as deltas against OLD's files (see
// WriteDelta): a new version of the registry layer is mostly the blobs OLD
// has. Both kinds are listed in the manifest uncompressed, by diff ID: the
// store, which keeps OLD's layers, has a left-out layer by that digest; a
// delta layer is rebuilt on load, byte for byte, and checked against it.

// DifferentialFile is the file of a differential archive that says so.
const DifferentialFile = "hoist-differential.json"

// DifferentialMediaType marks DifferentialFile.
const DifferentialMediaType = "application/vnd.hoist.differential-archive.v1+json"

// Differential is what DifferentialFile holds.
type Differential struct {
	MediaType string `json:"mediaType"`
	Base      Base   `json:"base"`
	// Omitted are the layers the archive does not hold, by uncompressed
	// digest (diff ID) and size: the store must have them, from Base.
	Omitted []OmittedLayer `json:"omitted"`
	// Deltas are the layers the archive holds as deltas.
	Deltas []DeltaLayer `json:"deltas,omitempty"`
}

// DeltaLayer is a layer a differential archive holds as a delta.
type DeltaLayer struct {
	// Digest and Size are the layer's, uncompressed, as the manifest
	// lists it.
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
	// Delta is the blob of the archive that holds the delta; its media
	// type says how it is compressed (DeltaMediaType and a suffix).
	Delta imgspecv1.Descriptor `json:"delta"`
}

// DeltaMediaType is a delta layer's blob, uncompressed; "+zstd" and
// "+gzip" follow it when compressed.
const DeltaMediaType = "application/vnd.hoist.layer.delta.v1"

// DeltaCompression is how a delta blob of that media type is compressed:
// "zstd", "gzip" or "" (none).
func DeltaCompression(mediaType string) (string, bool) {
	switch mediaType {
	case DeltaMediaType:
		return "", true
	case DeltaMediaType + "+zstd":
		return "zstd", true
	case DeltaMediaType + "+gzip":
		return "gzip", true
	}
	return "", false
}

// Base is the image a differential archive was made against.
type Base struct {
	// Name is a name of the image when saved, for messages.
	Name string `json:"name"`
	// ID is its image ID in the store (the sha256 of its config).
	ID string `json:"id"`
}

// OmittedLayer is a layer a differential archive leaves out.
type OmittedLayer struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

var imageID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ParseDifferential reads DifferentialFile.
func ParseDifferential(data []byte) (*Differential, error) {
	if len(data) > MaxJSONSize {
		return nil, fmt.Errorf("%s: larger than %d MiB", DifferentialFile, MaxJSONSize>>20)
	}
	var d Differential
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", DifferentialFile, err)
	}
	if d.MediaType != DifferentialMediaType {
		return nil, fmt.Errorf("%s: mediaType %q, want %s", DifferentialFile, d.MediaType, DifferentialMediaType)
	}
	if !imageID.MatchString(d.Base.ID) {
		return nil, fmt.Errorf("%s: base image ID %q: want 64 lowercase hexadecimal digits", DifferentialFile, d.Base.ID)
	}
	// The name is printed in messages: no control characters, no novel.
	if len(d.Base.Name) > 1024 {
		return nil, fmt.Errorf("%s: the base image's name is longer than 1024 bytes", DifferentialFile)
	}
	for _, r := range d.Base.Name {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return nil, fmt.Errorf("%s: the base image's name %q holds a control character", DifferentialFile, d.Base.Name)
		}
	}
	if len(d.Omitted) == 0 && len(d.Deltas) == 0 {
		// hoist save writes a full archive then: one that says it is
		// differential and omits nothing is not one of its archives.
		return nil, fmt.Errorf("%s: lists no omitted layer and no delta layer", DifferentialFile)
	}
	seen := map[digest.Digest]bool{}
	for i, l := range d.Omitted {
		if err := l.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("%s: omitted layer %d: digest %q: %w", DifferentialFile, i, l.Digest, err)
		}
		if l.Size < 0 {
			return nil, fmt.Errorf("%s: omitted layer %s: negative size", DifferentialFile, l.Digest)
		}
		if seen[l.Digest] {
			return nil, fmt.Errorf("%s: omitted layer %s is listed twice", DifferentialFile, l.Digest)
		}
		seen[l.Digest] = true
	}
	for i, l := range d.Deltas {
		if err := l.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("%s: delta layer %d: digest %q: %w", DifferentialFile, i, l.Digest, err)
		}
		if l.Size < 0 {
			return nil, fmt.Errorf("%s: delta layer %s: negative size", DifferentialFile, l.Digest)
		}
		if seen[l.Digest] {
			return nil, fmt.Errorf("%s: layer %s is listed twice", DifferentialFile, l.Digest)
		}
		seen[l.Digest] = true
		if err := l.Delta.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("%s: delta layer %s: the delta's digest %q: %w", DifferentialFile, l.Digest, l.Delta.Digest, err)
		}
		if _, ok := DeltaCompression(l.Delta.MediaType); !ok {
			return nil, fmt.Errorf("%s: delta layer %s: media type %q, want %s (with +zstd or +gzip)", DifferentialFile, l.Digest, l.Delta.MediaType, DeltaMediaType)
		}
	}
	return &d, nil
}

// omittedSizes is the layers a differential archive does not hold as
// they are (omitted and delta layers) by digest; nil for a full archive.
func (d *Differential) omittedSizes() map[digest.Digest]int64 {
	if d == nil {
		return nil
	}
	out := map[digest.Digest]int64{}
	for _, l := range d.Omitted {
		out[l.Digest] = l.Size
	}
	for _, l := range d.Deltas {
		out[l.Digest] = l.Size
	}
	return out
}

var errDifferentialDocker = errors.New("a differential archive is an oci-archive: " + DifferentialFile + " beside a manifest.json (docker save) is not one of hoist's archives")
