package build

import (
	"github.com/hoistdev/hoist/build/discover"
)

// searchImages finds the images under paths as discover.Search does and
// returns those to bundle; the references it leaves out (possible ones,
// those only Helm test hooks run) are warnings through o.Warn, since an
// image missed is an ImagePullBackOff in an air gap.
func searchImages(paths []string, o discover.Options) ([]discover.Image, error) {
	r, err := discover.Search(paths, o)
	if err != nil {
		return nil, err
	}
	if o.Warn != nil {
		for _, m := range r.Warnings() {
			o.Warn(m)
		}
	}
	return r.Images, nil
}
