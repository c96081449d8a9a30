package tfcheck

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2/hclwrite"
)

// CheckFormat reports every .tf, .tfvars and .tfvars.example file under dir
// (skipping .terraform) that differs from hclwrite.Format of itself, the
// formatter terraform fmt uses.
func CheckFormat(dir string) ([]Problem, error) {
	var out []Problem
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".terraform" {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".tf") || strings.HasSuffix(path, ".tfvars") || strings.HasSuffix(path, ".tfvars.example")) {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if got := hclwrite.Format(src); !bytes.Equal(got, src) {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, Problem{Rule: RuleFormat, Pos: fmt.Sprintf("%s:%d", rel, firstDiff(src, got)),
				Msg: "not in canonical format: run terraform fmt"})
		}
		return nil
	})
	return out, err
}

// firstDiff is the 1-based line of the first difference.
func firstDiff(a, b []byte) int {
	line := 1
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return line
		}
		if a[i] == '\n' {
			line++
		}
	}
	return line
}
