package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"go.wintun.dev/wintun/internal/netns"
)

// gone fails t unless neither the interface name in ns nor its socket is left.
func gone(t *testing.T, ns *netns.NS, name string) {
	t.Helper()
	sock := filepath.Join(socketDir, name+".sock")
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v, want it gone", sock, err)
	}
	if err := ns.Do(func() error {
		_, err := netlink.LinkByName(name)
		return err
	}); !errors.As(err, new(netlink.LinkNotFoundError)) {
		t.Errorf("interface %s: %v, want it gone", name, err)
	}
}

// reap waits up to 10 s for the child pid to end and returns its status.
func reap(t *testing.T, pid int) unix.WaitStatus {
	t.Helper()
	var ws unix.WaitStatus
	eventually(t, "the daemon's exit", func() error {
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err != nil {
			return err
		}
		if got != pid {
			return errors.New("still running")
		}
		return nil
	})
	return ws
}

// prepareDaemons makes sure the sockets of the interfaces names go to the test's
// private socketDir, removes them when the test ends, and makes the test the parent
// of the daemons it starts: a daemon leaves its starting process at once, and as a
// subreaper the test becomes its parent, so it can see it exit and reap it.
func prepareDaemons(t *testing.T, names ...string) {
	t.Helper()
	needPrivateSocketDir(t)
	for _, n := range names {
		sock := filepath.Join(socketDir, n+".sock")
		t.Cleanup(func() { os.Remove(sock) })
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
}

// TestDaemonLifecycle checks, on the daemon alone, what wg-quick relies on: the
// starting process returns once the socket answers; a second daemon for the same
// interface fails with the reason; SIGTERM, SIGINT and the removal of the socket
// each end the daemon, which removes the interface and the socket.
func TestDaemonLifecycle(t *testing.T) {
	netns.Require(t)
	const name = "wtwgS"
	sock := filepath.Join(socketDir, name+".sock")
	prepareDaemons(t, name)
	exe := goBuild(t, t.TempDir(), "wireguard-wintun", "go.wintun.dev/wintun/cmd/wireguard-wintun")
	t.Cleanup(func() {
		for _, pid := range childrenRunning(exe) {
			unix.Kill(pid, unix.SIGKILL)
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, 0, nil)
		}
	})
	ns := netns.ForTest(t)

	start := func(args ...string) (int, string) {
		var out bytes.Buffer
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), "WG_PROCESS_FOREGROUND=")
		cmd.Stdout, cmd.Stderr = &out, &out
		err := ns.Do(cmd.Run)
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, out.String()
		case errors.As(err, &ee):
			return ee.ExitCode(), out.String()
		}
		t.Fatalf("%s %v: %v", exe, args, err)
		return 0, ""
	}
	// background starts the daemon and returns its pid, once its socket answers.
	background := func() int {
		t.Helper()
		if code, out := start(name); code != 0 {
			t.Fatalf("wireguard-wintun %s: exit %d\n%s", name, code, out)
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("the daemon is ready, but its socket: %v", err)
		}
		c.Close()
		pids := childrenRunning(exe)
		if len(pids) != 1 {
			t.Fatalf("%d daemons run, want 1", len(pids))
		}
		// The interface is this library's adapter, of tunnel type WireGuard.
		var alias string
		if err := ns.Do(func() error {
			l, err := netlink.LinkByName(name)
			if err == nil {
				alias = l.Attrs().Alias
			}
			return err
		}); err != nil {
			t.Fatalf("interface %s: %v", name, err)
		}
		if !strings.HasPrefix(alias, "wintun:") || !strings.HasSuffix(alias, ":WireGuard") {
			t.Errorf("interface %s has the alias %q, want a wintun adapter's of type WireGuard", name, alias)
		}
		return pids[0]
	}

	for _, tc := range []struct {
		how  string
		stop func(pid int) error
	}{
		{"SIGTERM", func(pid int) error { return unix.Kill(pid, unix.SIGTERM) }},
		{"SIGINT", func(pid int) error { return unix.Kill(pid, unix.SIGINT) }},
		{"socket removed", func(int) error { return os.Remove(sock) }},
	} {
		pid := background()
		if tc.how == "SIGTERM" {
			code, out := start(name)
			if code != 1 || !strings.Contains(out, "create the interface") || strings.Count(out, name+":") != 1 {
				t.Errorf("a second daemon for %s: exit %d, %q; want 1 and the reason, naming it once", name, code, out)
			}
		}
		if err := tc.stop(pid); err != nil {
			t.Fatal(err)
		}
		if ws := reap(t, pid); !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("%s: the daemon ended with %#x, want exit status 0", tc.how, uint32(ws))
		}
		gone(t, ns, name)
	}

	// In the foreground, as wg-quick does not run it but a service manager would.
	var out bytes.Buffer
	fg := exec.Command(exe, "-f", name)
	fg.Env = append(os.Environ(), "LOG_LEVEL=verbose")
	fg.Stdout, fg.Stderr = &out, &out
	if err := ns.Do(fg.Start); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the foreground daemon's socket", func() error {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err
	})
	fg.Process.Signal(unix.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- fg.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("foreground daemon: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		fg.Process.Kill()
		<-done
		t.Fatalf("the foreground daemon did not stop on SIGTERM\n%s", out.String())
	}
	if !strings.Contains(out.String(), "Shutting down on terminated") {
		t.Errorf("foreground daemon's log lacks its shutdown:\n%s", out.String())
	}
	gone(t, ns, name)
}
