package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// TestFlagError checks that every error form of the flag package is reworded, with the
// option spelled --name: if a Go release changes those messages, this fails.
func TestFlagError(t *testing.T) {
	c := newCommand("x", "usage: wintun x\n\n", io.Discard)
	c.Int("n", 0, "count `N`")
	c.Duration("d", 0, "wait `D`")
	c.Bool("b", false, "a switch")
	c.String("s", "", "a string")
	var p prefixList
	c.Var(&p, "p", "prefix `PREFIX`")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nope"}, "unknown option --nope"},
		{[]string{"-nope"}, "unknown option --nope"},
		{[]string{"--n"}, "--n needs a value: --n N"},
		{[]string{"--s"}, "--s needs a value: --s string"},
		{[]string{"--n", "x"}, `--n "x": want a whole number`},
		{[]string{"--n", "99999999999999999999"}, `--n "99999999999999999999": out of range`},
		{[]string{"--d", "5"}, `--d "5": want a duration like 30s, 5m or 1h30m`},
		{[]string{"--b=maybe"}, `--b "maybe": want true or false`},
		{[]string{"--p", "10.0.0.1"}, `--p "10.0.0.1": the prefix length is missing: want an address with it, like 10.0.0.1/24 or fd00::1/64`},
		{[]string{"--p", "nope/8"}, `--p "nope/8": want an address with its prefix length, like 10.0.0.1/24 or fd00::1/64`},
		{[]string{"---n"}, `bad option "---n": options are spelled --name or --name=value`},
	} {
		err := c.Parse(tc.args)
		if err == nil {
			t.Errorf("%q parsed", tc.args)
			continue
		}
		if got := c.flagError(err); got != tc.want {
			t.Errorf("%q: %q\nwant %q", tc.args, got, tc.want)
		}
	}
	if err := c.Parse([]string{"--help"}); err != flag.ErrHelp {
		t.Errorf("--help: %v", err)
	}
}

func TestWrap(t *testing.T) {
	var b strings.Builder
	wrap(&b, "aaa bbb ccc ddd", "  ", 10)
	if want := "  aaa bbb\n  ccc ddd\n"; b.String() != want {
		t.Errorf("wrap: %q, want %q", b.String(), want)
	}
	b.Reset()
	wrap(&b, "averyveryverylongword x", "  ", 10)
	if want := "  averyveryverylongword\n  x\n"; b.String() != want {
		t.Errorf("wrap of a long word: %q, want %q", b.String(), want)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
