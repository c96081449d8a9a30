package seed

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"

	"github.com/fanoutexport/fanoutexport/shared/report"
)

// Oracle is a report computed independently of the pipeline: one shape of
// the report's reference query (report.Report.Reference, one
// cross-database SQL statement over the source databases). The seed test
// checks the golden files against it; the benchmark times it and compares
// its CSV with the pipeline's.
type Oracle struct {
	Report    report.Report
	Reference report.Reference
	DB        report.RefDB
	Params    report.Params
}

// Oracles lists one Oracle per reference shape of rep.
func Oracles(rep report.Report, db report.RefDB, p report.Params) []Oracle {
	var os []Oracle
	for _, ref := range rep.Reference {
		os = append(os, Oracle{Report: rep, Reference: ref, DB: db, Params: p})
	}
	return os
}

// Name says which report and shape: "withdraw_by_tag (join)".
func (o Oracle) Name() string { return o.Report.Type + " (" + o.Reference.Name + ")" }

// WriteCSV runs the query on db (any connection that can read every
// source database) and writes the report's file to w as the pipeline
// does: the byte-order mark if the report has one, the header, then every
// row with encoding/csv's framing, reading rows one at a time. It returns
// the number of data rows.
func (o Oracle) WriteCSV(ctx context.Context, db *sql.DB, w io.Writer) (int64, error) {
	if o.Report.CSV.BOM {
		if _, err := io.WriteString(w, "\uFEFF"); err != nil {
			return 0, fmt.Errorf("oracle csv: %w", err)
		}
	}
	cw := csv.NewWriter(w)
	header := o.Report.Header
	if err := cw.Write(header); err != nil {
		return 0, fmt.Errorf("oracle csv: %w", err)
	}
	q := o.Reference.Build(o.DB, o.Params)
	rows, err := db.QueryContext(ctx, q.SQL, q.Args...)
	if err != nil {
		return 0, fmt.Errorf("oracle query %s: %w", o.Name(), err)
	}
	defer rows.Close()
	raw := make([]sql.RawBytes, len(header))
	dest := make([]any, len(raw))
	for i := range raw {
		dest[i] = &raw[i]
	}
	rec := make([]string, len(raw))
	var n int64
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return n, fmt.Errorf("oracle scan %s: %w", o.Name(), err)
		}
		for i, b := range raw {
			rec[i] = string(b)
		}
		if err := cw.Write(rec); err != nil {
			return n, fmt.Errorf("oracle csv: %w", err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("oracle rows %s: %w", o.Name(), err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return n, fmt.Errorf("oracle csv: %w", err)
	}
	return n, nil
}
