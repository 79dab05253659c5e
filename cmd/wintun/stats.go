//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const statsUsage = `usage: wintun stats NAME [--watch] [--json]

Prints the kernel's counters of adapter NAME, per direction: packets, bytes, drops and
errors by cause. "system -> app" is what the system sent out through the adapter (the
sessions' ReceivePacket side); "app -> system" what the sessions sent (SendPacket).
Drops system -> app: no session was attached, or the session did not keep up. Packets a
session drops because its application left its ring full are counted by that process
only (wintun.Stats), not by the kernel.

--watch refreshes every second (in place on a terminal) until Ctrl+C; with --json it
prints one JSON object per line and second.

`

type statsReport struct {
	Name     string    `json:"name"`
	Time     time.Time `json:"time"`
	Sessions int       `json:"sessions"`
	Carrier  bool      `json:"carrier"`
	counters
}

func cmdStats(out io.Writer, args []string, stop <-chan os.Signal) error {
	c := newCommand("stats", statsUsage, out)
	watch := c.Bool("watch", false, "refresh every second until Ctrl+C")
	asJSON := c.Bool("json", false, "print JSON (with --watch, one object per line)")
	pos, err := c.parseArgs(args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if err := checkName("stats", name); err != nil {
		return err
	}
	return watchStats(out, name, *watch, *asJSON, time.Second, stop)
}

// watchStats prints the counters once, or every interval until stop receives.
func watchStats(out io.Writer, name string, watch, asJSON bool, interval time.Duration, stop <-chan os.Signal) error {
	inPlace := watch && !asJSON && isTerminal(out)
	var prev *statsReport
	lines := 0
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		info, err := inspect(name)
		if err != nil {
			if prev != nil {
				return userErrorf(err, "wintun stats: adapter %s went away (deleted, or moved to another network namespace)", name)
			}
			return lookupError("stats", name, err)
		}
		r := statsReport{Name: name, Time: time.Now(), Sessions: info.Sessions, Carrier: info.Carrier, counters: info.Counters}
		switch {
		case asJSON && watch:
			// One compact object per line, for tools that read a stream.
			if err := writeJSONLine(out, r); err != nil {
				return err
			}
		case asJSON:
			return writeJSON(out, r)
		default:
			var b strings.Builder
			formatStats(&b, r, prev)
			if inPlace && lines > 0 {
				fmt.Fprintf(out, "\x1b[%dA\x1b[J", lines) // up to the previous block, clear below
			} else if lines > 0 {
				fmt.Fprintln(out)
			}
			fmt.Fprint(out, b.String())
			lines = strings.Count(b.String(), "\n")
		}
		if !watch {
			return nil
		}
		prev = &r
		select {
		case <-stop:
			return nil
		case <-ticker.C:
		}
	}
}

func writeJSONLine(out io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// formatStats writes the human form of r; with prev, rates since prev too.
func formatStats(b *strings.Builder, r statsReport, prev *statsReport) {
	fmt.Fprintf(b, "%s: %d session(s) attached, carrier %s, at %s\n", r.Name, r.Sessions,
		onOff(r.Carrier, "on", "off"), r.Time.Format("15:04:05"))
	row := func(label string, d direction, p *direction, dt float64) {
		fmt.Fprintf(b, "  %-15s %12d packets %12s %10d dropped %8d errors", label, d.Packets, humanBytes(d.Bytes), d.Dropped, d.Errors)
		if p != nil && dt > 0 {
			fmt.Fprintf(b, "   %.0f packets/s, %s/s", float64(d.Packets-p.Packets)/dt, humanBytes(uint64(float64(d.Bytes-p.Bytes)/dt)))
		}
		fmt.Fprintln(b)
		var causes []string
		for k, v := range d.ErrorCauses {
			if v != 0 {
				causes = append(causes, fmt.Sprintf("%s %d", k, v))
			}
		}
		if len(causes) > 0 {
			sort.Strings(causes)
			fmt.Fprintf(b, "  %-15s errors by cause: %s\n", "", strings.Join(causes, ", "))
		}
	}
	var pt, pf *direction
	dt := 0.0
	if prev != nil {
		pt, pf = &prev.ToApplication, &prev.FromApplication
		dt = r.Time.Sub(prev.Time).Seconds()
	}
	row("system -> app", r.ToApplication, pt, dt)
	row("app -> system", r.FromApplication, pf, dt)
}

// isTerminal reports whether out is a terminal, where --watch may redraw in place.
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
