package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		act        action
		name       string
		foreground bool
		usage      bool   // the error is a usage error
		errText    string // a part of the error, if any
	}{
		{args: []string{"wg0"}, name: "wg0"},
		{args: []string{"-f", "wg0"}, name: "wg0", foreground: true},
		{args: []string{"--foreground", "wg0"}, name: "wg0", foreground: true},
		{args: []string{"--version"}, act: actionVersion},
		{args: []string{"--help"}, act: actionHelp},
		{args: []string{"-h"}, act: actionHelp},
		{args: nil, usage: true, errText: "missing"},
		{args: []string{"-x"}, usage: true, errText: `"-x"`},
		{args: []string{"-x", "wg0"}, usage: true, errText: `"-x"`},
		{args: []string{"-f"}, usage: true, errText: `"-f"`},
		{args: []string{"wg0", "wg1"}, usage: true, errText: "2 arguments"},
		{args: []string{"-f", "wg0", "wg1"}, usage: true, errText: "3 arguments"},
		{args: []string{"a/b"}, errText: "'/'"},
		{args: []string{"a:b"}, errText: "':'"},
		{args: []string{"a b"}, errText: "white space"},
		{args: []string{".."}, errText: "invalid"},
		{args: []string{"0123456789abcdef"}, errText: "longer than 15"},
		{args: []string{"0123456789abcde"}, name: "0123456789abcde"},
	} {
		act, name, fg, err := parseArgs(tc.args)
		if tc.errText != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errText) || errors.Is(err, errUsage) != tc.usage {
				t.Errorf("parseArgs(%q) = %v, want an error with %q (usage error: %v)", tc.args, err, tc.errText, tc.usage)
			}
			continue
		}
		if err != nil || act != tc.act || name != tc.name || fg != tc.foreground {
			t.Errorf("parseArgs(%q) = %v, %q, %v, %v; want %v, %q, %v", tc.args, act, name, fg, err, tc.act, tc.name, tc.foreground)
		}
	}
}

func TestRunWithoutDaemon(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		code         int
		stdout, errs string
	}{
		{[]string{"--help"}, 0, "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-wintun wg-quick up wg0", ""},
		{[]string{"--version"}, 0, "golang.zx2c4.com/wireguard", ""},
		{nil, 2, "", "Usage: wireguard-wintun [-f|--foreground] INTERFACE-NAME"},
		{[]string{"bad/name"}, 2, "", "invalid interface name"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errOut.String(), tc.errs) ||
			(tc.stdout == "") != (out.Len() == 0) || (tc.errs == "") != (errOut.Len() == 0) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, stdout with %q, stderr with %q",
				tc.args, code, out.String(), errOut.String(), tc.code, tc.stdout, tc.errs)
		}
	}
}
