package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// The scale targets the summary checks: a function stays well inside its
// instance's memory (256Mi for most functions in terraform/), Redis holds little more than the CSV it feeds, the
// fan-out costs at most twice MariaDB's own join, and a small report feels
// instant.
const (
	targetRSSMiB    = 128
	targetRedis     = 1.5
	targetRatio     = 2.0
	targetSmallMs   = 250
	maxTimelineRows = 40
)

// label names one attempt of a big report.
func (b BigResult) label() string {
	if b.Attempt > 1 {
		return fmt.Sprintf("%s#%d", b.Type, b.Attempt)
	}
	return b.Type
}

func okIf(b bool) string {
	if b {
		return "ok"
	}
	return "MISSED"
}

// PrintSummary writes the results as tables for people.
func PrintSummary(w io.Writer, r *Results) {
	s := r.Spec
	fmt.Fprintf(w, "\n== bench %s ==\n", r.RunID)
	fmt.Fprintf(w, "data: %d users (0-%d of %d tags each), %d withdrawals, %d payments, seed %d\n",
		s.Users, s.MaxTags, s.Tags, s.Withdrawals, s.Payments, s.Seed)
	var parts []string
	for _, l := range r.Load {
		parts = append(parts, fmt.Sprintf("%s %d rows %.2fs: load %.2fs (%s), indexes %.2fs, analyze %.2fs",
			l.Table, l.Rows, l.Seconds, l.LoadSec, l.Method, l.IndexSec, l.AnalyzeSec))
	}
	if s.Skew {
		fmt.Fprintf(w, "skewed: half the withdrawals and payments belong to users 1..%d\n", hotUsers(s.Users))
	}
	if r.PartRows > 0 || r.MaxParts > 0 {
		fmt.Fprintf(w, "PART_ROWS=%d MAX_PARTS=%d (0: the functions' default)\n", r.PartRows, r.MaxParts)
	}
	fmt.Fprintf(w, "generation: %.2fs [%s]\n", r.GenerateSec, strings.Join(parts, "; "))
	fmt.Fprintf(w, "build: %.2fs, stack start: %.2fs, total run: %.1fs\n", r.BuildSec, r.StartSec, r.TotalSec)
	fmt.Fprintf(w, "machine: %d CPUs, load average %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end (1, 5, 15 min)\n",
		r.CPUs, r.LoadStart[0], r.LoadStart[1], r.LoadStart[2], r.LoadEnd[0], r.LoadEnd[1], r.LoadEnd[2])

	if len(r.Reports) > 0 {
		fmt.Fprintln(w, "\nbig reports (publish -> SUCCESS vs MariaDB's single-query join, rows read on the client):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "report\t#\tstatus\trows\tCSV MiB\tpipeline s\tserver s\tMariaDB s\tratio\tsame CSV\tRedis +MiB\tRedis/CSV\thash MiB\thash/CSV\t")
		for _, b := range r.Reports {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%v\t%.1f\t%.2f\t%.1f\t%.2f\t\n",
				b.Type, b.Attempt, b.Status, b.Rows, mib(b.CSVBytes), b.PipelineSec, b.ServerSec, b.MariaDBBestSec, b.Ratio,
				b.Match, mib(b.RedisGrowth), b.RedisGrowthRatio, mib(b.HashPeak), b.HashRatio)
		}
		tw.Flush()
		for _, b := range r.Reports {
			if len(b.MariaDB) > 1 {
				var vs []string
				for _, m := range b.MariaDB {
					vs = append(vs, fmt.Sprintf("%s %.2fs", m.Variant, m.Seconds))
				}
				fmt.Fprintf(w, "  %s MariaDB variants: %s (ratio uses the fastest)\n", b.label(), strings.Join(vs, ", "))
			}
		}

		fmt.Fprintln(w, "\npeak RSS per process during each big report (VmHWM, reset before each; MiB) and CPU seconds:")
		names := map[string]bool{}
		for _, b := range r.Reports {
			for n := range b.Procs {
				names[n] = true
			}
		}
		var sorted []string
		for n := range names {
			if n != selfName {
				sorted = append(sorted, n)
			}
		}
		sort.Strings(sorted)
		sorted = append(sorted, selfName)
		servers := map[string]bool{}
		for _, b := range r.Reports {
			for n := range b.ServerCPU {
				servers[n] = true
			}
		}
		var serverNames []string
		for n := range servers {
			serverNames = append(serverNames, n)
		}
		sort.Strings(serverNames)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		hdr := "process\t"
		for _, b := range r.Reports {
			hdr += b.label() + " MiB (anon)\tCPU s\t"
		}
		fmt.Fprintln(tw, hdr)
		for _, n := range sorted {
			line := n + "\t"
			for _, b := range r.Reports {
				p := b.Procs[n]
				line += fmt.Sprintf("%.1f (%.0f)\t%.2f\t", p.PeakMiB, p.AnonMiB, p.CPUSec)
			}
			fmt.Fprintln(tw, line)
		}
		for _, n := range serverNames {
			line := n + "\t"
			for _, b := range r.Reports {
				line += fmt.Sprintf("-\t%.2f\t", b.ServerCPU[n])
			}
			fmt.Fprintln(tw, line)
		}
		total, floor, wall := "all processes (CPU s)\t", fmt.Sprintf("floor on %d CPUs (s)\t", r.CPUs), "wall (s)\t"
		for _, b := range r.Reports {
			total += fmt.Sprintf("\t%.2f\t", b.CPUSec)
			floor += fmt.Sprintf("\t%.2f\t", b.FloorSec)
			wall += fmt.Sprintf("\t%.2f\t", b.PipelineSec)
		}
		fmt.Fprintln(tw, total)
		fmt.Fprintln(tw, floor)
		fmt.Fprintln(tw, wall)
		tw.Flush()
		fmt.Fprintln(w, "  (the shared servers' CPU includes whatever else this machine ran meanwhile)")

		fmt.Fprintln(w, "\nusage and cost of each big report (pushes by function: requests, handler s, longest single delivery s, CPU s here; billed s = the larger of the handler time and CPU s / the size's vCPU; vCPU-s and GiB-s at the Terraform module's sizes):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "report\tfunction\tsize\trequests\tfailed\thandler s\tlongest s\tCPU s\tbilled s\tvCPU-s\tGiB-s\t")
		for _, b := range r.Reports {
			for _, fn := range sortedKeys(b.Functions) {
				u, sz := b.Functions[fn], r.Deployment.Sizes[fn]
				fmt.Fprintf(tw, "%s\t%s\t%.3g vCPU %s\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.3f\t%.3f\t\n", b.label(), fn, sz.VCPU, sz.Memory,
					u.Requests, u.Failed, u.Seconds, u.LongestSec, u.CPUSec, u.BilledSec, u.VCPUSeconds, u.GiBSeconds)
			}
		}
		tw.Flush()
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "report\twall s\tCPU s\tfloor s\tlongest delivery\tparts\tpart rows (max/median)\tPub/Sub msgs\tKiB\tbillable KiB\tGCS up(+parts)/compose/del/read\thash MiB-s\tload 1m\t$ report\t")
		for _, b := range r.Reports {
			fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.2f s %s\t%d\t%s\t%d\t%.1f\t%.1f\t%d(+%d)/%d/%d/%d\t%.1f\t%.1f\t%.5f\t\n", b.label(), b.PipelineSec, b.CPUSec, b.FloorSec,
				b.LongestDeliverySec, b.LongestDeliveryFn, b.Parts.Parts, partRows(b.Parts), b.PubSub.Messages, float64(b.PubSub.Bytes)/1024,
				float64(b.PubSub.BillableBytes)/1024, b.GCS.Uploads, b.GCS.UploadParts, b.GCS.Composes, b.GCS.Deletes, b.GCS.Reads, b.HashByteSec/(1<<20), b.LoadAvg[0], b.Cost.TotalUSD)
		}
		tw.Flush()
		for _, b := range r.Reports {
			if len(b.Parts.Rows) > 1 {
				fmt.Fprintf(w, "  %s part sizes (%s rows): %v\n", b.label(), b.Parts.Source, b.Parts.Rows)
			}
		}

		for _, b := range r.Reports {
			fmt.Fprintf(w, "\ntimeline of %s (record %d; seconds after the request):\n", b.label(), b.RecordID)
			for i, e := range b.Timeline {
				if i == maxTimelineRows {
					fmt.Fprintf(w, "  ... %d more\n", len(b.Timeline)-i)
					break
				}
				extra := ""
				if e.Stage != nil {
					extra += fmt.Sprintf(" stage=%v", e.Stage)
				}
				if e.Rows != nil {
					extra += fmt.Sprintf(" rows=%v", e.Rows)
				}
				fmt.Fprintf(w, "  %7.3f  %-22s %s%s\n", e.AtSec, e.Process, e.Message, extra)
			}
		}
	}

	if len(r.Small) > 0 {
		fmt.Fprintln(w, "\nsmall reports, one after the other (publish -> SUCCESS seen by the client, polling every 50 ms; server = updated_at - created_at):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "report\truns\tok\tfailed\trows\tp50 ms\tp95 ms\tmax ms\tserver p50 ms\tserver p95 ms\t")
		for _, sr := range r.Small {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d-%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", sr.Type, sr.Runs, sr.Succeeded, sr.Failed, sr.RowsMin, sr.RowsMax,
				sr.WallP50Ms, sr.WallP95Ms, sr.WallMaxMs, sr.ServerP50Ms, sr.ServerP95Ms)
		}
		tw.Flush()
		fmt.Fprintln(w, "\nusage and cost per small report (means over the runs; CPU includes the stack's idle work between them):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "report\tCPU s\tfunction requests\thandler s\tvCPU-s\tGiB-s\tlongest s\tPub/Sub msgs\tbillable KiB\tGCS ops (all runs) up/compose/del/read\tload 1m\t$ report\t")
		for _, sr := range r.Small {
			var req int
			var sec, vcpu, gib float64
			for _, u := range sr.Functions {
				req, sec, vcpu, gib = req+u.Requests, sec+u.Seconds, vcpu+u.VCPUSeconds, gib+u.GiBSeconds
			}
			fmt.Fprintf(tw, "%s\t%.3f\t%d\t%.3f\t%.4f\t%.4f\t%.2f\t%d\t%.1f\t%d/%d/%d/%d\t%.1f\t%.7f\t\n", sr.Type, sr.CPUSec, req, sec, vcpu, gib, sr.LongestDeliverySec,
				sr.PubSub.Messages, float64(sr.PubSub.BillableBytes)/1024, sr.GCS.Uploads, sr.GCS.Composes, sr.GCS.Deletes, sr.GCS.Reads, sr.LoadAvg[0], sr.Cost.TotalUSD)
		}
		tw.Flush()
		for _, sr := range r.Small {
			if sr.Succeeded == 0 {
				continue
			}
			fmt.Fprintf(w, "\nmedian timeline of the small %s reports (ms after the request; n = runs that logged it):\n", sr.Type)
			fmt.Fprintf(w, "  %7s  %-22s %s\n", "0", "client", "insert record + publish to RabbitMQ")
			for _, e := range sr.Timeline {
				fmt.Fprintf(w, "  %7.0f  %-22s %s stage=%v n=%v\n", e.AtSec*1000, e.Process, e.Message, e.Stage, e.Rows)
			}
			fmt.Fprintf(w, "  %7.0f  %-22s SUCCESS seen (p50, polling every 50 ms)\n", sr.WallP50Ms, "client")
		}
	}

	if r.Monthly != nil {
		fmt.Fprintf(w, "\nmonthly cost (prices as of %s, to be checked: %s):\n", r.PricesAsOf, r.PricesSource)
		PrintMonthly(w, *r.Monthly)
	}

	fmt.Fprintln(w, "\nscale targets:")
	for _, b := range r.Best {
		if !b.AllSucceeded {
			fmt.Fprintf(w, "  %s: not every attempt reached SUCCESS\n", b.Type)
		}
		fmt.Fprintf(w, "  %s: peak RSS ≤ %d MiB: %s (max %.1f, %s); Redis growth ≤ %.1f× CSV: %s (%.2f×); pipeline ≤ %.0f× MariaDB: %s (%.2f× = %.2fs / %.2fs, best of %d); CSV equals MariaDB's: %v\n",
			b.Type, targetRSSMiB, okIf(b.PeakRSSMiB <= targetRSSMiB), b.PeakRSSMiB, b.PeakRSSProc, targetRedis, okIf(b.RedisRatio <= targetRedis), b.RedisRatio,
			targetRatio, okIf(b.Ratio <= targetRatio), b.Ratio, b.PipelineSec, b.MariaDBSec, b.Attempts, b.AllMatch)
		fmt.Fprintf(w, "  %s: longest single delivery %.2f s (%s); best attempt %.2f CPU s, floor %.2f s on %d CPUs; %d part(s), largest/median %.2f; $%.5f a report\n",
			b.Type, b.LongestDeliverySec, b.LongestDeliveryFn, b.CPUSec, b.FloorSec, r.CPUs, b.Parts.Parts, b.Parts.MaxOverMedian, b.Cost.TotalUSD)
	}
	for _, sr := range r.Small {
		if sr.Succeeded == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s small report ≤ %d ms: p50 %s (%.0f), p95 %s (%.0f)\n", sr.Type, targetSmallMs,
			okIf(sr.WallP50Ms <= targetSmallMs), sr.WallP50Ms, okIf(sr.WallP95Ms <= targetSmallMs), sr.WallP95Ms)
	}
	if r.LogDir != "" {
		fmt.Fprintf(w, "process logs: %s\n", r.LogDir)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// partRows is "max/median" of a report's part sizes, or "?" when unknown.
func partRows(p PartSizes) string {
	if len(p.Rows) == 0 {
		return "?"
	}
	mx := p.Rows[0]
	for _, r := range p.Rows {
		mx = max(mx, r)
	}
	if p.MaxOverMedian == 0 {
		return fmt.Sprintf("%d/0", mx)
	}
	return fmt.Sprintf("%d/%.0f", mx, float64(mx)/p.MaxOverMedian)
}

// PrintMonthly writes the monthly table: one line per cost, fixed costs
// marked, the total, and the alternatives beside it.
func PrintMonthly(w io.Writer, m Monthly) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  item\tUSD/month\tidle too\tbasis\n")
	for _, l := range m.Lines {
		fixed := ""
		if l.Fixed {
			fixed = "yes"
		}
		fmt.Fprintf(tw, "  %s\t%.2f\t%s\t%s\n", l.Item, l.USD, fixed, l.Basis)
	}
	fmt.Fprintf(tw, "  total\t%.2f\t%.2f\t%d small + %d big reports a day, %.0f days\n", m.TotalUSD, m.FixedUSD, m.Workload.SmallPerDay, m.Workload.BigPerDay, m.Workload.Days)
	for _, l := range m.Alternatives {
		fmt.Fprintf(tw, "  (%s\t%.2f\t\t%s)\n", l.Item, l.USD, l.Basis)
	}
	tw.Flush()
}
