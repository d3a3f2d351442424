package build

// BinfmtSupports lets the external tests ask what the machine can run.
var BinfmtSupports = binfmtSupports
