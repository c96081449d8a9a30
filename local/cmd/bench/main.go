// Command bench measures the export pipeline end to end on generated data
// (package local/bench). Run it from the module root:
//
//	go run ./local/cmd/bench                         # 200k withdrawals, both report types
//	go run ./local/cmd/bench -withdrawals 1000000 -json > bench.json
//
// MariaDB, Redis and RabbitMQ must listen (make services).
package main

import (
	"os"

	"github.com/fanoutexport/fanoutexport/local/bench"
)

func main() { os.Exit(bench.Main(os.Args[1:])) }
