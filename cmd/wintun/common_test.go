package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestPrivilegeHint checks the advice given for a missing CAP_NET_ADMIN, which a user
// without it sees (such a user is not created here; the message is what matters).
func TestPrivilegeHint(t *testing.T) {
	eperm := fmt.Errorf("wintun: adapter %q: %w", "wt0", syscall.EPERM)
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"pipe", []string{"needs CAP_NET_ADMIN: run as root, or create the adapter with", "sudo wintun create wt0 --owner USER", "wintun pipe wt0"}},
		{"create", []string{"needs CAP_NET_ADMIN: run as root", "--owner USER"}},
		{"delete", []string{"needs CAP_NET_ADMIN: run as root (sudo wintun delete"}},
	} {
		err := privilegeHint(tc.cmd, "wt0", eperm)
		if !errors.Is(err, syscall.EPERM) {
			t.Errorf("%s: %v does not wrap EPERM", tc.cmd, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tc.cmd, err, w)
			}
		}
	}
	other := errors.New("something else")
	if err := privilegeHint("pipe", "wt0", other); err != other {
		t.Errorf("privilegeHint changed an unrelated error: %v", err)
	}
	if err := privilegeHint("pipe", "wt0", nil); err != nil {
		t.Errorf("privilegeHint(nil) = %v", err)
	}
	if err := hint("create", "wt0", fmt.Errorf("x: %w", os.ErrExist)); !strings.Contains(err.Error(), "wintun delete wt0") {
		t.Errorf("hint for an existing adapter: %v", err)
	}
}

// TestValidation checks that bad command lines are refused before any system call, so
// it needs no privileges.
func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		run  func([]string) error
		args []string
		want string
	}{
		{cmdCreateTo, []string{}, "missing adapter name"},
		{cmdCreateTo, []string{"a", "b"}, "want 1 argument"},
		{cmdCreateTo, []string{"bad/name"}, "character the kernel refuses"},
		{cmdCreateTo, []string{"0123456789abcdef"}, "at most 15"},
		{cmdCreateTo, []string{"wt0", "--guid", "nope"}, "invalid GUID"},
		{cmdCreateTo, []string{"wt0", "--mtu", "20"}, "want 68 to 65535"},
		{cmdCreateTo, []string{"wt0", "--address", "10.0.0.1"}, "prefix length"},
		{cmdCreateTo, []string{"wt0", "--route", "x/8"}, "prefix length"},
		{cmdCreateTo, []string{"wt0", "--persist=false"}, "would vanish"},
		{cmdCreateTo, []string{"wt0", "--owner", "no-such-user-here"}, "unknown user"},
		{cmdCreateTo, []string{"wt0", "--group", "no-such-group-here"}, "unknown group"},
		{cmdCreateTo, []string{"wt0", "--bogus"}, "flag provided but not defined"},
		{cmdDeleteTo, []string{"a:b"}, "character the kernel refuses"},
		{cmdStatsTo, []string{""}, "empty adapter name"},
		{cmdPipeTo, []string{"wt0"}, "exactly one of --listen"},
		{cmdPipeTo, []string{"wt0", "--listen", ":1", "--connect", "127.0.0.1:2"}, "exactly one of --listen"},
		{cmdPipeTo, []string{"wt0", "--connect", "127.0.0.1"}, "--connect"},
		{cmdPipeTo, []string{"wt0", "--connect", "127.0.0.1:0"}, "port is missing"},
		{cmdPipeTo, []string{"wt0", "--listen", ":1", "--mtu", "70000"}, "want 68 to 65535"},
		{cmdListTo, []string{"extra"}, "want 0 argument"},
		{cmdUninstallTo, []string{"--json", "x"}, "want 0 argument"},
		{cmdVersionTo, []string{"--yaml"}, "not defined"},
	} {
		err := tc.run(tc.args)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}

func cmdCreateTo(args []string) error    { return cmdCreate(new(bytes.Buffer), args) }
func cmdDeleteTo(args []string) error    { return cmdDelete(new(bytes.Buffer), args) }
func cmdListTo(args []string) error      { return cmdList(new(bytes.Buffer), args) }
func cmdUninstallTo(args []string) error { return cmdUninstall(new(bytes.Buffer), args) }
func cmdVersionTo(args []string) error   { return cmdVersion(new(bytes.Buffer), args) }
func cmdStatsTo(args []string) error     { return cmdStats(new(bytes.Buffer), args, nil) }
func cmdPipeTo(args []string) error      { return cmdPipe(new(bytes.Buffer), args, nil) }

func TestHelp(t *testing.T) {
	for name, run := range map[string]func(*bytes.Buffer, []string) error{
		"create":    func(b *bytes.Buffer, a []string) error { return cmdCreate(b, a) },
		"delete":    func(b *bytes.Buffer, a []string) error { return cmdDelete(b, a) },
		"list":      func(b *bytes.Buffer, a []string) error { return cmdList(b, a) },
		"uninstall": func(b *bytes.Buffer, a []string) error { return cmdUninstall(b, a) },
		"stats":     func(b *bytes.Buffer, a []string) error { return cmdStats(b, a, nil) },
		"pipe":      func(b *bytes.Buffer, a []string) error { return cmdPipe(b, a, nil) },
		"version":   func(b *bytes.Buffer, a []string) error { return cmdVersion(b, a) },
	} {
		var b bytes.Buffer
		if err := run(&b, []string{"--help"}); !errors.Is(err, errHelp) {
			t.Errorf("%s --help: %v", name, err)
		}
		if !strings.HasPrefix(b.String(), "usage: wintun "+name) {
			t.Errorf("%s --help printed:\n%s", name, b.String())
		}
	}
	var b bytes.Buffer
	cmdPipe(&b, []string{"--help"}, nil)
	if !strings.Contains(b.String(), "UNENCRYPTED") {
		t.Errorf("pipe --help does not say UNENCRYPTED:\n%s", b.String())
	}
	b.Reset()
	cmdCreate(&b, []string{"-h"})
	if !strings.Contains(b.String(), "always persistent") {
		t.Errorf("create --help does not say it persists:\n%s", b.String())
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
