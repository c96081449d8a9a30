// Package docs writes the README's troubleshooting table from the registry
// of FAILED reasons (shared/failreason), between the README's
// failed-reasons markers; a test fails when the committed README differs.
package docs

//go:generate go run ./internal/gen ../../README.md

import (
	"fmt"
	"os"
	"strings"

	"github.com/fanoutexport/fanoutexport/shared/failreason"
)

const (
	beginMarker = "<!-- failed-reasons -->"
	endMarker   = "<!-- /failed-reasons -->"
)

// ReasonTable is the Markdown table of every reason in failreason.All.
func ReasonTable() string {
	var b strings.Builder
	b.WriteString("| reason, as it starts | what it means | what to do |\n|---|---|---|\n")
	for _, r := range failreason.All {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", r.Shown, r.Means, r.Do)
	}
	return b.String()
}

// WithReasonTable returns readme with the text between the markers
// replaced by ReasonTable.
func WithReasonTable(readme string) (string, error) {
	start := strings.Index(readme, beginMarker)
	end := strings.Index(readme, endMarker)
	if start < 0 || end < start {
		return "", fmt.Errorf("README has no %s … %s section", beginMarker, endMarker)
	}
	return readme[:start] + beginMarker + "\n" + ReasonTable() + readme[end:], nil
}

// WriteREADME rewrites the table in the README at path.
func WriteREADME(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := WithReasonTable(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if out == string(b) {
		return nil
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
