package kubefile

import "strings"

// Dockerfile instructions, as buildah knows them.
var dockerInstructions = []string{
	"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
	"HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL",
	"STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}

// Cluster instructions, compiled by hoist and never seen by buildah.
var clusterInstructions = []string{
	"APP", "APPCMDS", "APPENV", "CMDS", "CNI", "CSI", "IMAGE", "KUBEVERSION", "LAUNCH",
}

func isDockerInstruction(word string) bool { return contains(dockerInstructions, word) }

func isClusterInstruction(word string) bool { return contains(clusterInstructions, word) }

func contains(list []string, word string) bool {
	for _, w := range list {
		if strings.EqualFold(w, word) {
			return true
		}
	}
	return false
}

// suggest returns the known instruction nearest to word, or "" when none is
// close enough to be a plausible typo.
func suggest(word string) string {
	word = strings.ToUpper(word)
	best, bestDist := "", len(word)/2+1
	if len(word) > 2*len("KUBEVERSION") {
		return "" // too far from every instruction; skip the quadratic work
	}
	for _, list := range [][]string{dockerInstructions, clusterInstructions} {
		for _, known := range list {
			if d := editDistance(word, known); d < bestDist {
				best, bestDist = known, d
			}
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (optimal string alignment),
// so that a swap of two letters (FORM for FROM) counts as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// shorten keeps a word from a hostile or broken file readable in a message.
func shorten(word string) string {
	if r := []rune(word); len(r) > 40 {
		return string(r[:40]) + "..."
	}
	return word
}
