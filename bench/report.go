package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the results table and of the JSON file.
type row struct {
	Scenario    string  `json:"scenario"` // "1", "2", …
	Name        string  `json:"name"`
	Concurrency int     `json:"concurrency"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	Unit        string  `json:"unit"` // what one op is
	Ops         int     `json:"ops"`
	P50us       float64 `json:"p50_us,omitempty"`
	P99us       float64 `json:"p99_us,omitempty"`
	// Baseline names the row this one is compared with; Ratio is this row's
	// figure over the baseline's (throughput, or latency for scenario 4).
	Baseline string   `json:"baseline,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
	// RatioRange is the lowest and the highest ratio of the paired rounds
	// whose median is Ratio, where the ratio was measured in rounds.
	RatioRange []float64 `json:"ratio_range,omitempty"`
	Target     string    `json:"target,omitempty"`
	// Verdict is PASS, MISS, baseline, info or SKIPPED. Measured in rounds,
	// it goes by the median; Straddles says that some rounds fell on the
	// other side of the target: a verdict the machine's noise can flip.
	Verdict   string         `json:"verdict"`
	Straddles bool           `json:"rounds_straddle_target,omitempty"`
	Notes     string         `json:"notes,omitempty"`
	Extra     map[string]any `json:"extra,omitempty"`
}

// results is the whole run, as written to the JSON file.
type results struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Quick    bool      `json:"quick"`
	Machine  machine   `json:"machine"`
	Rows     []row     `json:"rows"`
	// BusyBefore is the machine's CPU use, 0 to 1, measured for a second with
	// the benchmark idle before each scenario: above a few percent, something
	// else was running.
	BusyBefore map[string]float64 `json:"busy_before"`
}

func (r *results) add(x row) *row {
	r.Rows = append(r.Rows, x)
	return &r.Rows[len(r.Rows)-1]
}

func phaseRow(scenario, name string, concurrency int, unit string, p phase) row {
	return row{Scenario: scenario, Name: name, Concurrency: concurrency, Unit: unit, Ops: p.ops,
		OpsPerSec: p.perSecond(), P50us: micros(p.p50), P99us: micros(p.p99)}
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// judge sets the ratio and the verdict: info without a target, else PASS
// when ok and MISS when not.
func (x *row) judge(baseline string, ratio float64, target string, ok bool) {
	x.Baseline, x.Ratio, x.Target = baseline, &ratio, target
	if target == "" {
		x.Verdict = "info"
		return
	}
	x.Verdict = "MISS"
	if ok {
		x.Verdict = "PASS"
	}
}

// judgeRounds is judge for a ratio measured in paired rounds (compare): the
// verdict goes by the median, pass tells whether a ratio meets the target
// (nil: no target), and the row records the rounds' range and whether it
// straddles the target.
func (x *row) judgeRounds(baseline string, s spread, target string, pass func(float64) bool) {
	x.judge(baseline, s.median, target, pass != nil && pass(s.median))
	x.RatioRange = []float64{s.low, s.high}
	x.Straddles = pass != nil && pass(s.low) != pass(s.high)
}

// atLeast is the test of a "≥ min" target.
func atLeast(min float64) func(float64) bool {
	return func(r float64) bool { return r >= min }
}

// cells are a row's columns as the table and the Markdown print them.
func cells(x row) []any {
	ratio, ops, conc := "-", "-", "-"
	if x.Ratio != nil {
		ratio = fmt.Sprintf("%.2f", *x.Ratio)
	}
	if len(x.RatioRange) == 2 {
		ratio += fmt.Sprintf(" (%.2f–%.2f)", x.RatioRange[0], x.RatioRange[1])
	}
	verdict := x.Verdict
	if x.Straddles {
		verdict += " (rounds straddle)"
	}
	if x.OpsPerSec > 0 {
		ops = fmt.Sprintf("%.0f", x.OpsPerSec)
	}
	if x.Concurrency > 0 {
		conc = fmt.Sprint(x.Concurrency)
	}
	return []any{x.Scenario, x.Name, conc, ops, latency(x.P50us), latency(x.P99us), ratio, x.Target, verdict, x.Notes}
}

// writeTable prints the results as an aligned table.
func writeTable(w io.Writer, r *results) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "#\tscenario\tconc.\tops/s\tp50\tp99\tratio\ttarget\tresult\tnotes\t")
	for _, x := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s \t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s \t\n", cells(x)...)
	}
	tw.Flush()
}

// writeMarkdown prints the results as a Markdown table, for BENCHMARKS.md.
func writeMarkdown(w io.Writer, r *results) {
	fmt.Fprintln(w, "| # | scenario | conc. | ops/s | p50 | p99 | ratio | target | result | notes |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|---|---|---|")
	for _, x := range r.Rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", cells(x)...)
	}
}

func latency(us float64) string {
	switch {
	case us <= 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 10000:
		return fmt.Sprintf("%.2fms", us/1000)
	default:
		return fmt.Sprintf("%.1fms", us/1000)
	}
}

// writeJSON writes the results to path, creating its directory.
func writeJSON(path string, r *results) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// misses lists the rows that missed their target.
func misses(r *results) []string {
	var out []string
	for _, x := range r.Rows {
		if x.Verdict == "MISS" {
			name := strings.TrimSpace(x.Scenario + " " + x.Name)
			if x.Straddles {
				name += fmt.Sprintf(" (median %.2f; some rounds met the target)", *x.Ratio)
			}
			out = append(out, name)
		}
	}
	return out
}
