package build

// BinfmtSupports lets the external tests ask what the machine can run.
var BinfmtSupports = binfmtSupports

// SetBinfmtDir points the binfmt check at another directory, so that a test
// decides which architectures "the kernel" runs; it returns the restore.
func SetBinfmtDir(dir string) func() {
	old := binfmtDir
	binfmtDir = dir
	return func() { binfmtDir = old }
}

// SetCacheFormat plays a hoist whose build cache format is v; it returns
// the restore.
func SetCacheFormat(v string) func() {
	old := cacheFormat
	cacheFormat = v
	return func() { cacheFormat = old }
}
