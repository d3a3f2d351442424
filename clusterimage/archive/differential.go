package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"unicode"

	"github.com/opencontainers/go-digest"
)

// A differential archive (hoist save --since OLD) is an oci-archive whose
// manifest lists every layer of the image, but which holds only the layers
// OLD lacks. The file DifferentialFile names OLD and the layers left out;
// each left-out layer is listed in the manifest uncompressed, by its diff
// ID, so that the store, which keeps OLD's layers, has it by that digest.

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
	if len(d.Omitted) == 0 {
		// hoist save writes a full archive then: one that says it is
		// differential and omits nothing is not one of its archives.
		return nil, fmt.Errorf("%s: lists no omitted layer", DifferentialFile)
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
	return &d, nil
}

// omittedSizes is the omitted layers by digest; nil for a full archive.
func (d *Differential) omittedSizes() map[digest.Digest]int64 {
	if d == nil {
		return nil
	}
	out := map[digest.Digest]int64{}
	for _, l := range d.Omitted {
		out[l.Digest] = l.Size
	}
	return out
}

var errDifferentialDocker = errors.New("a differential archive is an oci-archive: " + DifferentialFile + " beside a manifest.json (docker save) is not one of hoist's archives")
