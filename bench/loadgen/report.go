package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// reportCommand reads the JSON results of runs (one object a line, as printed by --json)
// and writes a markdown table: for each test, the median of each figure over the repeats
// (with the range), for the floor and for Switchboard, and the ratio of the medians.
func reportCommand(args []string, w io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: loadgen report RESULTS.jsonl…")
	}
	var all []Result
	for _, name := range args {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || line[0] != '{' {
				continue
			}
			var r Result
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				f.Close()
				return fmt.Errorf("%s: %v", name, err)
			}
			all = append(all, r)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return err
		}
	}
	writeReport(w, all)
	return nil
}

// testKey identifies one cell of the matrix: a mode at a size (and rate or window).
type testKey struct {
	Mode   string
	Conns  int
	Rate   float64
	Window int
}

var modeOrder = map[string]int{"idle": 0, "storm": 1, "throughput": 2, "latency": 3}

// figure is one row of the table: how to read it from a result and how to show it.
type figure struct {
	name   string
	get    func(*Result) float64
	format string
	// noRatio: the ratio of this figure says nothing (it describes the conditions of
	// the run, not the server).
	noRatio bool
}

func figuresFor(mode string) []figure {
	switch mode {
	case "idle":
		return []figure{
			{"server RSS per connection (KiB)", func(r *Result) float64 { return r.RSSPerConnKB }, "%.1f", false},
			{"connect rate, to all subscribed (conn/s)", func(r *Result) float64 { return r.ConnectRate }, "%.0f", false},
			{"server CPU per connection set up (µs)", func(r *Result) float64 { return r.ServerCPUConnUS }, "%.0f", false},
		}
	case "storm":
		return []figure{
			{"all WebSocket handshakes done (s)", func(r *Result) float64 { return r.ConnectS }, "%.3f", false},
			{"all subscribed (s)", func(r *Result) float64 { return r.ReadyS }, "%.3f", false},
			{"all received a first publication (s)", func(r *Result) float64 { return r.ProbeS }, "%.3f", false},
			{"server CPU per connection set up (µs)", func(r *Result) float64 { return r.ServerCPUConnUS }, "%.0f", false},
		}
	case "throughput":
		return []figure{
			{"deliveries/s (publications × subscribers)", func(r *Result) float64 { return r.MsgsPerS }, "%.0f", false},
			{"server CPU per delivery (µs)", func(r *Result) float64 { return r.ServerCPUMsgUS }, "%.2f", false},
			{"server CPU (cores of 2)", func(r *Result) float64 { return r.ServerCPUCores }, "%.2f", false},
			{"loadgen CPU (cores of 2)", func(r *Result) float64 { return r.LoadgenCPUCores }, "%.2f", false},
			{"rest of the machine's CPU (cores of 2)", func(r *Result) float64 { return r.OtherCPUCores }, "%.2f", true},
			{"p50 publish→receive under saturation (ms)", func(r *Result) float64 { return r.P50MS }, "%.1f", false},
			{"bytes per frame", func(r *Result) float64 { return r.FrameBytes }, "%.0f", false},
			{"messages lost", func(r *Result) float64 { return float64(r.Lost) }, "%.0f", false},
		}
	case "latency":
		return []figure{
			{"p50 publish→receive (ms)", func(r *Result) float64 { return r.P50MS }, "%.2f", false},
			{"p90 (ms)", func(r *Result) float64 { return r.P90MS }, "%.2f", false},
			{"p99 (ms)", func(r *Result) float64 { return r.P99MS }, "%.2f", false},
			{"max (ms)", func(r *Result) float64 { return r.MaxMS }, "%.2f", false},
			{"server CPU (cores of 2)", func(r *Result) float64 { return r.ServerCPUCores }, "%.2f", false},
			{"rest of the machine's CPU (cores of 2)", func(r *Result) float64 { return r.OtherCPUCores }, "%.2f", true},
			{"messages lost", func(r *Result) float64 { return float64(r.Lost) }, "%.0f", false},
		}
	}
	return nil
}

func writeReport(w io.Writer, all []Result) {
	groups := map[testKey]map[string][]*Result{}
	for i := range all {
		r := &all[i]
		k := testKey{Mode: r.Mode, Conns: r.Conns}
		switch r.Mode {
		case "latency":
			k.Rate = r.Rate
		case "throughput":
			k.Window = r.Window
		}
		if groups[k] == nil {
			groups[k] = map[string][]*Result{}
		}
		groups[k][r.Target] = append(groups[k][r.Target], r)
	}
	keys := make([]testKey, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if modeOrder[a.Mode] != modeOrder[b.Mode] {
			return modeOrder[a.Mode] < modeOrder[b.Mode]
		}
		if a.Conns != b.Conns {
			return a.Conns < b.Conns
		}
		return a.Rate < b.Rate
	})

	fmt.Fprintln(w, "| test | figure | floor | switchboard | switchboard / floor |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|")
	var problems []string
	for _, k := range keys {
		g := groups[k]
		name := fmt.Sprintf("%s, %s conns", k.Mode, human(k.Conns))
		switch k.Mode {
		case "latency":
			name += fmt.Sprintf(", %g pub/s", k.Rate)
		case "throughput":
			name += fmt.Sprintf(", window %d", k.Window)
		}
		for _, t := range []string{targetFloor, targetSwitchboard} {
			for _, r := range g[t] {
				if r.Error != "" {
					problems = append(problems, fmt.Sprintf("- %s, %s: %s", name, t, r.Error))
				}
			}
		}
		for i, f := range figuresFor(k.Mode) {
			label := ""
			if i == 0 {
				label = name
			}
			fl, fok := cell(g[targetFloor], f)
			sb, sok := cell(g[targetSwitchboard], f)
			ratio := "–"
			if fok && sok && !f.noRatio {
				mf, ms := median(values(g[targetFloor], f)), median(values(g[targetSwitchboard], f))
				if mf != 0 {
					ratio = fmt.Sprintf("%.2f×", ms/mf)
				} else if ms == 0 {
					ratio = "="
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", label, f.name, fl, sb, ratio)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each cell: median over the repeats, with (min–max) when there are several; the ratio is of the medians.")
	if len(problems) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Runs that reported a problem (their figures are included above):")
		fmt.Fprintln(w)
		for _, p := range problems {
			fmt.Fprintln(w, p)
		}
	}
}

func values(rs []*Result, f figure) []float64 {
	v := make([]float64, 0, len(rs))
	for _, r := range rs {
		v = append(v, f.get(r))
	}
	return v
}

func cell(rs []*Result, f figure) (string, bool) {
	if len(rs) == 0 {
		return "–", false
	}
	v := values(rs, f)
	s := fmt.Sprintf(f.format, median(v))
	if len(v) > 1 {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, x := range v {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
		s += fmt.Sprintf(" ("+f.format+"–"+f.format+")", lo, hi)
	}
	return s, true
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func human(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}
