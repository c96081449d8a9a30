package tfcheck

import (
	"archive/zip"
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// RuleArchive reports a source archive that would not build, or that ships
// what it must not.
const RuleArchive = "archive"

// CheckArchive checks the source archive Terraform's archive provider
// built (zipPath) against the repository at root: it holds go.mod, go.sum
// and every file of every package of this module the root package imports,
// and no test file, testdata, local/, terraform/ or .git/.
func CheckArchive(zipPath, root string) ([]Problem, error) {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return nil, fmt.Errorf("open the source archive: %w", err)
	}
	defer zr.Close()
	var out []Problem
	have := map[string]bool{}
	for _, f := range zr.File {
		name := f.Name
		have[name] = true
		switch {
		case strings.HasSuffix(name, "_test.go"),
			strings.HasPrefix(name, "terraform/"), strings.HasPrefix(name, "local/"),
			strings.HasPrefix(name, ".git/"), strings.HasPrefix(name, ".tmp/"),
			strings.Contains("/"+name, "/testdata/"):
			out = append(out, Problem{RuleArchive, "the source archive includes " + name})
		}
	}
	for _, f := range []string{"go.mod", "go.sum", "register.go"} {
		if !have[f] {
			out = append(out, Problem{RuleArchive, "the source archive lacks " + f})
		}
	}

	cmd := exec.Command("go", "list", "-deps", "-f", "{{.Dir}}\t{{join .GoFiles \" \"}} {{join .CgoFiles \" \"}} {{join .EmbedFiles \" \"}}", ".")
	cmd.Dir = root
	listing, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps: %w", err)
	}
	pkgs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(listing)), "\n") {
		dir, files, _ := strings.Cut(line, "\t")
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // the standard library or another module
		}
		pkgs++
		for _, f := range strings.Fields(files) {
			if p := path.Join(filepath.ToSlash(rel), f); !have[p] {
				out = append(out, Problem{RuleArchive, "the source archive lacks " + p + ", which the root package's build needs"})
			}
		}
	}
	if pkgs == 0 {
		return nil, fmt.Errorf("go list found no package of the module at %s", root)
	}
	return out, nil
}
