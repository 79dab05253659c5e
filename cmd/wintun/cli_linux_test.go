//go:build linux

package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite testdata/help/*.txt from the current help texts")

func cmdCreateTo(args []string) error { return cmdCreate(new(bytes.Buffer), args) }
func cmdDeleteTo(args []string) error { return cmdDelete(new(bytes.Buffer), args) }
func cmdStatsTo(args []string) error  { return cmdStats(new(bytes.Buffer), args, nil) }
func cmdPipeTo(args []string) error   { return cmdPipe(new(bytes.Buffer), args, nil) }

func noStop() <-chan os.Signal { return make(chan os.Signal) }

// runArgs runs the command line args as main does and returns its exit status and
// what it wrote to stdout and stderr.
func runArgs(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = runCommand(args, &o, &e, noStop)
	return code, o.String(), e.String()
}

// TestHelp checks the whole help of the command and of every subcommand against
// testdata/help: printed once, on stdout, with status 0, however it is asked for.
func TestHelp(t *testing.T) {
	golden := func(name string) string {
		t.Helper()
		path := filepath.Join("testdata", "help", name+".txt")
		if *update {
			var o, e bytes.Buffer
			args := []string{name, "--help"}
			if name == "wintun" {
				args = args[1:]
			}
			runCommand(args, &o, &e, noStop)
			if err := os.WriteFile(path, o.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	check := func(want string, args ...string) {
		t.Helper()
		code, stdout, stderr := runArgs(args...)
		if code != 0 || stderr != "" || stdout != want {
			t.Errorf("wintun %s: status %d, stderr %q, stdout:\n%s\nwant:\n%s", strings.Join(args, " "), code, stderr, stdout, want)
		}
	}
	main := golden("wintun")
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}} {
		check(main, args...)
	}
	for cmd := range commands {
		want := golden(cmd)
		if !strings.HasPrefix(want, "usage: wintun "+cmd+" ") {
			t.Errorf("testdata/help/%s.txt does not start with the usage line:\n%s", cmd, want)
		}
		// The options are spelled as the command line takes them.
		if regexp.MustCompile(`(^|\s)-[a-z]`).MatchString(want) || strings.Contains(want, "--persist") {
			t.Errorf("%s --help spells an option -name, or names --persist, which no command has:\n%s", cmd, want)
		}
		for _, args := range [][]string{{cmd, "--help"}, {cmd, "-h"}, {"help", cmd}, {cmd, "--help", "extra"}} {
			check(want, args...)
		}
	}
	// Help anywhere on a command line wins, before anything is done.
	check(golden("create"), "create", "wt0", "--mtu", "1400", "-h")
	if len(commands) != 8 {
		t.Errorf("%d commands; testdata/help has 8 and this test checks each", len(commands))
	}
}

// TestBadInput checks the one-line message and status 2 of command line mistakes,
// which are all found before any system call: no privileges needed.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"create"}, "wintun create: missing adapter name"},
		{[]string{"create", "a", "b"}, `wintun create: one adapter name wanted, got 2: "a" "b"`},
		{[]string{"create", "bad/name"}, `wintun create: adapter name "bad/name" has a character the kernel refuses ('/'); use letters, digits, '-', '_' or '.'`},
		{[]string{"create", "wt0", "--mtu", "abc"}, `wintun create: --mtu "abc": want a whole number`},
		{[]string{"create", "wt0", "--mtu"}, `wintun create: --mtu needs a value: --mtu N`},
		{[]string{"create", "wt0", "--mtu", "20"}, `wintun create: --mtu 20: want 68 to 65535`},
		{[]string{"create", "wt0", "--mtu", "1000", "--address", "10.0.0.1/24", "--address", "fd00::1/64"},
			`wintun create: --mtu 1000 is too small for IPv6 (fd00::1/64): IPv6 needs 1280 or more`},
		{[]string{"create", "wt0", "--mtu", "1279", "--route", "fd00:1::/64"},
			`wintun create: --mtu 1279 is too small for IPv6 (fd00:1::/64): IPv6 needs 1280 or more`},
		{[]string{"create", "wt0", "--address", "10.0.0.1"},
			`wintun create: --address "10.0.0.1": the prefix length is missing: want an address with it, like 10.0.0.1/24 or fd00::1/64`},
		{[]string{"create", "wt0", "--route", "x/8"},
			`wintun create: --route "x/8": want an address with its prefix length, like 10.0.0.1/24 or fd00::1/64`},
		{[]string{"create", "wt0", "--persist"}, `wintun create: unknown option --persist`},
		{[]string{"create", "wt0", "--type", ""}, `wintun create: --type "": want 1 to 64 bytes, no control characters`},
		{[]string{"create", "--", "-x"}, `wintun create: adapter name "-x" starts with '-', which the commands would take for an option`},
		{[]string{"create", "wt0", "--guid", "nope"}, `wintun create: --guid: invalid GUID "nope": want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`},
		{[]string{"create", "wt0", "--owner", "no-such-user-here"},
			`wintun create: --owner: user: unknown user no-such-user-here: give an existing user name or a number`},
		{[]string{"create", "wt0", "--group", "4294967295"}, `wintun create: --group: id 4294967295 is the kernel's "no id"`},
		{[]string{"delete", "a:b"}, `wintun delete: adapter name "a:b" has a character the kernel refuses (':'); use letters, digits, '-', '_' or '.'`},
		{[]string{"delete", "--force=no", "wt0"}, `wintun delete: --force "no": want true or false`},
		{[]string{"stats", ""}, `wintun stats: empty adapter name`},
		{[]string{"stats", "wt0", "--watch", "1"}, `wintun stats: one adapter name wanted, got 2: "wt0" "1"`},
		{[]string{"list", "extra"}, `wintun list: unexpected argument "extra": list takes options only`},
		{[]string{"uninstall", "--json", "x"}, `wintun uninstall: unexpected argument "x": uninstall takes options only`},
		{[]string{"version", "--yaml"}, `wintun version: unknown option --yaml`},
		{[]string{"demo", "extra"}, `wintun demo: unexpected argument "extra": demo takes options only`},
		{[]string{"demo", "--count", "-1"}, `wintun demo: --count -1: want 0 (run until Ctrl+C) or more replies`},
		{[]string{"demo", "--count", "x"}, `wintun demo: --count "x": want a whole number`},
		{[]string{"demo", "--count", "1", "--timeout", "5"}, `wintun demo: --timeout "5": want a duration like 30s, 5m or 1h30m`},
		{[]string{"demo", "--count", "1", "--timeout", "-5s"}, `wintun demo: --timeout -5s: want a positive duration`},
		{[]string{"demo", "--timeout", "5s"}, `wintun demo: --timeout goes with --count: without it the demo runs until Ctrl+C`},
		{[]string{"pipe", "wt0"}, `wintun pipe: give exactly one of --listen ADDR and --connect ADDR`},
		{[]string{"pipe", "wt0", "--listen", ":1", "--connect", "127.0.0.1:2"}, `wintun pipe: give exactly one of --listen ADDR and --connect ADDR`},
		{[]string{"pipe", "wt0", "--connect", "127.0.0.1"}, `wintun pipe: --connect: address 127.0.0.1: missing port in address`},
		{[]string{"pipe", "wt0", "--connect", "127.0.0.1:0"}, `wintun pipe: --connect: the peer's port is missing`},
		{[]string{"pipe", "wt0", "--connect", "127.0.0.1:1", "--peer", "127.0.0.1:2"},
			`wintun pipe: --peer goes with --listen: --connect ADDR names the peer already`},
		{[]string{"pipe", "wt0", "--listen", ":1", "--peer", "127.0.0.1"}, `wintun pipe: --peer: address 127.0.0.1: missing port in address`},
		{[]string{"pipe", "wt0", "--listen", ":1", "--peer", "0.0.0.0:1"},
			`wintun pipe: --peer: want the peer's host and port, like 192.0.2.2:51820`},
		{[]string{"pipe", "wt0", "--listen", ":1", "--mtu", "70000"}, `wintun pipe: --mtu 70000: want 68 to 65535`},
		{[]string{"pipe", "wt0", "--listen", ":1", "--mtu", "1000", "--address", "fd00::1/64"},
			`wintun pipe: --mtu 1000 is too small for IPv6 (fd00::1/64): IPv6 needs 1280 or more`},
		{[]string{"pipe", "--listen"}, `wintun pipe: --listen needs a value: --listen ADDR`},
	} {
		code, stdout, stderr := runArgs(tc.args...)
		want := fmt.Sprintf("%s (see `wintun %s --help`)\n", tc.want, tc.args[0])
		if code != 2 || stdout != "" || stderr != want {
			t.Errorf("wintun %q: status %d, stdout %q, stderr\n%q\nwant status 2 and\n%q", tc.args, code, stdout, stderr, want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, "wintun: unknown command \"nope\" (see `wintun --help`)\n"},
		{[]string{"help", "nope"}, "wintun: no command \"nope\" (see `wintun --help`)\n"},
		{[]string{"help", "demo", "extra"}, "wintun: help takes one command, not \"demo extra\" (see `wintun --help`)\n"},
		{nil, usage},
	} {
		code, stdout, stderr := runArgs(tc.args...)
		if code != 2 || stdout != "" || stderr != tc.want {
			t.Errorf("wintun %q: status %d, stdout %q, stderr\n%q\nwant status 2 and\n%q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

// TestKernelErrors checks that what the kernel refuses is told as what to do, with
// status 1, and that the errors still wrap the kernel's for errors.Is.
func TestKernelErrors(t *testing.T) {
	ns := netns.ForTest(t)
	if err := ns.Do(func() error {
		// Another program's route, through lo.
		_, dst, _ := net.ParseCIDR("10.20.0.0/16")
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: dst})
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		cause error
		want  string
	}{
		{[]string{"create", "wt0", "--mtu", "1000"}, nil, ""},
		{[]string{"create", "wt0"}, fs.ErrExist,
			"wintun create: adapter wt0 exists already: use it, pick another name, or delete it with `wintun delete wt0`"},
		{[]string{"create", "lo"}, fs.ErrExist,
			"wintun create: interface lo exists already and is not one of wintun's adapters: pick another name (`ip link` lists the interfaces)"},
		{[]string{"create", "wt1", "--address", "10.9.0.5/24", "--route", "10.9.0.0/24"}, syscall.EEXIST,
			"wintun create: route 10.9.0.0/24 exists already: the kernel adds the route to an address's own network, here 10.9.0.5/24's; " +
				"leave out --route 10.9.0.0/24 (adapter wt1 removed again)"},
		{[]string{"create", "wt3", "--address", "10.9.1.5/24", "--address", "10.9.1.5/24"}, syscall.EEXIST,
			"wintun create: adapter wt3 has address 10.9.1.5/24 already (given twice?) (adapter wt3 removed again)"},
		{[]string{"create", "wt2", "--route", "10.20.0.1/16"}, syscall.EEXIST,
			"wintun create: a route to 10.20.0.0/16 exists already (`ip route show 10.20.0.0/16` shows it): delete it first, " +
				"or leave out --route 10.20.0.1/16 (adapter wt2 removed again)"},
		{[]string{"pipe", "wt0", "--listen", "127.0.0.1:0", "--address", "fd00::1/64"}, syscall.EINVAL,
			"wintun pipe: cannot add IPv6 address fd00::1/64: adapter wt0 has MTU 1000 and IPv6 needs 1280 or more: " +
				"raise it with `ip link set wt0 mtu 1280`"},
		{[]string{"delete", "lo"}, nil,
			"wintun delete: interface lo is not one of wintun's adapters: wintun uses only the adapters it created (`wintun list` lists them)"},
		{[]string{"stats", "nope"}, fs.ErrNotExist,
			"wintun stats: no adapter nope in this network namespace: `wintun list` lists the adapters, `sudo wintun create nope` creates it"},
		{[]string{"delete", "nope"}, fs.ErrNotExist,
			"wintun delete: no adapter nope in this network namespace: `wintun list` lists the adapters, `sudo wintun create nope` creates it"},
		{[]string{"delete", "wt0"}, nil, ""},
	} {
		var code int
		var stdout, stderr string
		ns.Do(func() error { code, stdout, stderr = runArgs(tc.args...); return nil })
		if tc.want == "" {
			if code != 0 || stderr != "" {
				t.Fatalf("wintun %q: status %d\n%s%s", tc.args, code, stdout, stderr)
			}
			continue
		}
		if code != 1 || stdout != "" || stderr != tc.want+"\n" {
			t.Errorf("wintun %q: status %d, stdout %q, stderr\n%q\nwant status 1 and\n%q", tc.args, code, stdout, stderr, tc.want+"\n")
		}
		if tc.cause == nil {
			continue
		}
		// The same, called as a function: the cause is still there for errors.Is.
		err := ns.Do(func() error {
			switch tc.args[0] {
			case "create":
				return cmdCreateTo(tc.args[1:])
			case "pipe":
				return cmdPipeTo(tc.args[1:])
			case "stats":
				return cmdStatsTo(tc.args[1:])
			}
			return cmdDeleteTo(tc.args[1:])
		})
		if !errors.Is(err, tc.cause) {
			t.Errorf("wintun %q: %v does not wrap %v", tc.args, err, tc.cause)
		}
	}
	// What the failed creates left: nothing.
	ns.Do(func() error {
		for _, name := range []string{"wt0", "wt1", "wt2"} {
			if _, err := netlink.LinkByName(name); err == nil {
				t.Errorf("adapter %s still there", name)
			}
		}
		return nil
	})
}

// unprivChildEnv makes the test binary, re-executed by TestUnprivileged, run
// TestUnprivilegedChild as the user nobody; its value is the mode of the /dev/net/tun
// node the child sees, in octal.
const unprivChildEnv = "WINTUN_CMD_TEST_UNPRIVILEGED_CHILD"

// TestUnprivileged runs the commands as the user nobody, without CAP_NET_ADMIN, in a
// namespace with adapter wtroot (root's) in it: each refusal says what to do in the
// command's terms. The child runs in a private mount namespace in which, still root,
// it mounts a /dev/net/tun node of its own over the host's, so that nothing outside it
// changes: mode 0666 as most distributions ship it, then 0600.
func TestUnprivileged(t *testing.T) {
	ns := netns.ForTest(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error { return cmdCreateTo([]string{"wtroot"}) }); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"0666", "0600"} {
		var out []byte
		err := ns.Do(func() error {
			// The child is forked from this thread, so it starts in this namespace.
			cmd := exec.Command(exe, "-test.run=^TestUnprivilegedChild$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), unprivChildEnv+"="+mode)
			cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
			var err error
			out, err = cmd.CombinedOutput()
			return err
		})
		if err != nil || !strings.Contains(string(out), "unprivileged child: all checks passed") {
			t.Errorf("child with /dev/net/tun mode %s: %v\n%s", mode, err, out)
		}
	}
}

// TestUnprivilegedChild runs only in the child of TestUnprivileged.
func TestUnprivilegedChild(t *testing.T) {
	v := os.Getenv(unprivChildEnv)
	if v == "" {
		t.Skip("run by TestUnprivileged")
	}
	var mode uint32
	if _, err := fmt.Sscanf(v, "%o", &mode); err != nil {
		t.Fatal(err)
	}
	// Still root, in a private mount namespace: a node of our own over /dev/net/tun.
	dir, err := os.MkdirTemp("", "wintun-cmd-devnode")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID, "mode=0755,size=64k"); err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(dir, "tun")
	err = unix.Mknod(node, unix.S_IFCHR|mode, int(unix.Mkdev(10, 200)))
	if err == nil {
		err = os.Chmod(node, os.FileMode(mode)) // the umask took bits off
	}
	if err == nil {
		err = unix.Mount(node, "/dev/net/tun", "", unix.MS_BIND, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	unix.Unmount(dir, unix.MNT_DETACH) // the bind mount keeps the node
	os.Remove(dir)
	const nobody = 65534
	if err := syscall.Setgroups(nil); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setgid(nobody); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setuid(nobody); err != nil {
		t.Fatal(err)
	}
	if hasCapNetAdmin() {
		t.Fatal("CAP_NET_ADMIN after dropping to nobody")
	}
	noTun := "/dev/net/tun is not open to this user: run as root, or have root run `chmod 0666 /dev/net/tun` " +
		"(the mode most distributions ship)"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"create", "wtnew"}, "wintun create: creating an adapter needs root (CAP_NET_ADMIN): " +
			"run `sudo wintun create wtnew ...`; to let a user start sessions on it without root, add --owner USER or --group GROUP"},
		{[]string{"delete", "wtroot"}, "wintun delete: deleting an adapter needs root (CAP_NET_ADMIN): run `sudo wintun delete wtroot`"},
		{[]string{"uninstall"}, "wintun uninstall: deleting adapters needs root (CAP_NET_ADMIN): run `sudo wintun uninstall`"},
	}
	if mode == 0o666 {
		cases = append(cases, []struct {
			args []string
			want string
		}{
			{[]string{"pipe", "wtnew", "--listen", "127.0.0.1:0"}, "wintun pipe: there is no adapter wtnew, and creating it needs root " +
				"(CAP_NET_ADMIN): create it once with `sudo wintun create wtnew --owner USER`, then run `wintun pipe wtnew ...` as USER; " +
				"or run the pipe as root"},
			{[]string{"pipe", "wtroot", "--listen", "127.0.0.1:0"}, "wintun pipe: starting a session on adapter wtroot needs root " +
				"(CAP_NET_ADMIN): run the pipe as root, or make the adapter this user's: `sudo wintun delete wtroot`, then " +
				"`sudo wintun create wtroot --owner USER` (`wintun list` shows its owner and group; with both set, a user needs both)"},
		}...)
	} else {
		cases = append(cases, []struct {
			args []string
			want string
		}{
			{[]string{"pipe", "wtnew", "--listen", "127.0.0.1:0"}, "wintun pipe: there is no adapter wtnew, and creating it: " + noTun},
			{[]string{"pipe", "wtroot", "--listen", "127.0.0.1:0"}, "wintun pipe: starting a session on adapter wtroot: " + noTun},
		}...)
	}
	for _, tc := range cases {
		code, stdout, stderr := runArgs(tc.args...)
		if code != 1 || stderr != tc.want+"\n" {
			t.Errorf("wintun %q: status %d, stdout %q, stderr\n%q\nwant status 1 and\n%q", tc.args, code, stdout, stderr, tc.want+"\n")
		}
	}
	// Reading needs no privileges.
	if code, stdout, stderr := runArgs("stats", "wtroot"); code != 0 || !strings.HasPrefix(stdout, "wtroot: 0 session(s) attached") {
		t.Errorf("stats as nobody: status %d\n%s%s", code, stdout, stderr)
	}
	// The pipe's error wraps the kernel's refusal.
	err = cmdPipeTo([]string{"wtnew", "--listen", "127.0.0.1:0"})
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("pipe as nobody: %v does not wrap a permission error", err)
	}
	if _, err := wintun.OpenAdapter("wtnew"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after the failed pipe, wtnew: %v", err)
	}
	if !t.Failed() {
		fmt.Println("unprivileged child: all checks passed")
	}
}
