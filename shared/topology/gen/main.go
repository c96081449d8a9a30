// Command gen writes terraform/topology.json, what the Terraform module
// needs to know of the code (package topology's Document), and the mock
// values terraform/tests need for each listener
// (terraform/tests/mocks/topology.tfmock.hcl). Run it with
// `go generate ./shared/topology`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/fanoutexport/fanoutexport/shared/topology"
)

func main() {
	out := flag.String("o", "terraform/topology.json", "the file to write")
	mocks := flag.String("mocks", "terraform/tests/mocks/topology.tfmock.hcl", "the terraform tests' mock values of the listeners to write")
	gomod := flag.String("gomod", "go.mod", "the module's go.mod (its go directive names the runtime)")
	flag.Parse()
	mod, err := os.ReadFile(*gomod)
	var b []byte
	if err == nil {
		b, err = topology.JSON(mod)
	}
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err == nil {
		b, err = topology.MocksHCL()
	}
	if err == nil {
		err = os.WriteFile(*mocks, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "topology gen:", err)
		os.Exit(1)
	}
}
