package apply

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"sigs.k8s.io/yaml"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/yamlmerge"
)

// configFiles are the Clusterfile's Config documents (sealer's) as files
// of the rootfs: each one's data processed, then written whole or merged
// into the image's YAML file at its path, as sealer dumps them into the
// rootfs before install. They go to every node with the rendered
// templates (writeRendered), after them.
func configFiles(rootfs string, configs []clusterfile.Config) ([]renderedFile, error) {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var out []renderedFile
	for _, c := range configs {
		f, err := configFile(root, c)
		if err != nil {
			return nil, fmt.Errorf("Config %q (%s): %w", c.Name, c.Path, err)
		}
		out = append(out, f)
	}
	return out, nil
}

func configFile(root *os.Root, c clusterfile.Config) (renderedFile, error) {
	// The node's tree is the image's: a folder on the way that is a
	// symlink there would take the write out of the rootfs.
	for dir := path.Dir(c.Path); dir != "."; dir = path.Dir(dir) {
		if info, err := root.Lstat(dir); err == nil && !info.IsDir() {
			return renderedFile{}, fmt.Errorf("%s is a %s in the image, not a folder", dir, kindOf(info.Mode()))
		}
	}
	mode := fs.FileMode(0o644)
	info, err := root.Lstat(c.Path)
	switch {
	case err == nil && !info.Mode().IsRegular():
		return renderedFile{}, fmt.Errorf("the image's %s is a %s, not a file", c.Path, kindOf(info.Mode()))
	case err == nil:
		mode = info.Mode().Perm()
	case !errors.Is(err, fs.ErrNotExist):
		return renderedFile{}, err
	}
	data, err := processConfig(c.Data, c.Process)
	if err != nil {
		return renderedFile{}, err
	}
	if c.Strategy == clusterfile.ConfigMerge {
		if info == nil {
			return renderedFile{}, errors.New("merge: the image has no such file to merge into")
		}
		current, err := root.ReadFile(c.Path)
		if err != nil {
			return renderedFile{}, err
		}
		if data, err = yamlmerge.Overlay(current, data, yamlmerge.KeepMissing); err != nil {
			return renderedFile{}, fmt.Errorf("merge: %w", err)
		}
	}
	return renderedFile{Path: c.Path, Mode: mode, Data: data}, nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "folder"
	case m.IsRegular():
		return "file"
	}
	return "special file"
}

// processConfig runs sealer's processors on a Config's data, in order:
// value makes the ones after it work on each value of a YAML map rather
// than on the whole; toJson writes YAML as JSON; toBase64 encodes.
func processConfig(data string, process []string) ([]byte, error) {
	perValue := false
	for _, p := range process {
		switch p {
		case clusterfile.ProcessValue:
			perValue = true
		case clusterfile.ProcessToJSON:
			if !perValue {
				j, err := yaml.YAMLToJSON([]byte(data))
				if err != nil {
					return nil, fmt.Errorf("toJson: the data is not YAML: %w", err)
				}
				data = string(j)
				continue
			}
			var m map[string]any
			if err := yaml.Unmarshal([]byte(data), &m); err != nil {
				return nil, fmt.Errorf("value|toJson: the data is not a YAML map: %w", err)
			}
			out := map[string]string{}
			for k, v := range m {
				j, err := yaml.Marshal(v)
				if err == nil {
					j, err = yaml.YAMLToJSON(j)
				}
				if err != nil {
					return nil, fmt.Errorf("value|toJson: %s: %w", k, err)
				}
				out[k] = string(bytes.TrimSpace(j))
			}
			y, err := yaml.Marshal(out)
			if err != nil {
				return nil, err
			}
			data = string(y)
		case clusterfile.ProcessToBase64:
			if !perValue {
				data = base64.StdEncoding.EncodeToString([]byte(data))
				continue
			}
			var m map[string]string
			if err := yaml.Unmarshal([]byte(data), &m); err != nil {
				return nil, fmt.Errorf("value|toBase64: the data is not a YAML map of strings: %w", err)
			}
			for k, v := range m {
				m[k] = base64.StdEncoding.EncodeToString([]byte(v))
			}
			y, err := yaml.Marshal(m)
			if err != nil {
				return nil, err
			}
			data = string(y)
		}
	}
	return []byte(data), nil
}
