//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"go.wintun.dev/wintun/internal/netns"
)

var netip79 = netip.MustParseAddr("10.79.0.2")

func TestStats(t *testing.T) {
	ns := netns.ForTest(t)
	if out, err := run(t, ns, func(b *bytes.Buffer) error {
		return cmdCreate(b, []string{"st0", "--address", "10.79.0.1/24"})
	}); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	// With no session attached, what the system sends out is dropped by the kernel.
	ping(ns, netip79, 1)
	out, err := run(t, ns, func(b *bytes.Buffer) error { return cmdStats(b, []string{"st0"}, nil) })
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"st0: 0 session(s) attached, carrier off", "system -> app", "app -> system", "1 dropped"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats lacks %q:\n%s", want, out)
		}
	}

	// --watch --json: one object a tick until stopped.
	var b syncBuffer
	stop := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() {
		done <- ns.Do(func() error { return watchStats(&b, "st0", true, true, 20*time.Millisecond, stop) })
	}()
	for deadline := time.Now().Add(5 * time.Second); strings.Count(b.String(), "\n") < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("--watch printed:\n%s", b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop <- os.Interrupt
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var r statsReport
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Name != "st0" || r.ToApplication.Dropped != 1 {
			t.Errorf("line %q: %v", sc.Text(), err)
		}
	}

	// Human --watch into a non-terminal: blocks with rates, and an error when the
	// adapter goes away.
	var h syncBuffer
	go func() {
		done <- ns.Do(func() error { return watchStats(&h, "st0", true, false, 20*time.Millisecond, nil) })
	}()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(h.String(), "packets/s"); {
		if time.Now().After(deadline) {
			t.Fatalf("--watch printed:\n%s", h.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ns.Do(func() error {
		l, err := netlink.LinkByName("st0")
		if err == nil {
			err = netlink.LinkDel(l)
		}
		return err
	})
	err = <-done
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "went away") {
		t.Errorf("watch of a deleted adapter: %v", err)
	}
	if strings.Contains(h.String(), "\x1b[") {
		t.Error("escape sequences written to a non-terminal")
	}

	_, err = run(t, ns, func(b *bytes.Buffer) error { return cmdStats(b, []string{"st0"}, nil) })
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stats of a missing adapter: %v", err)
	}
}
