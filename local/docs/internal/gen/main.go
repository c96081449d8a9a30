// Command gen writes the README's troubleshooting table from the registry
// of FAILED reasons: go generate ./local/docs.
package main

import (
	"fmt"
	"os"

	"github.com/fanoutexport/fanoutexport/local/docs"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gen README.md")
		os.Exit(2)
	}
	if err := docs.WriteREADME(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
