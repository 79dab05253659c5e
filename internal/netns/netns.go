//go:build linux

// Package netns gives tests fresh network namespaces, created from Go without any
// external program, and the privilege checks that decide whether such tests run.
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NS is a network namespace held open by a file descriptor. The namespace and what is
// in it disappear once Close has been called and nothing else refers to it.
type NS struct {
	fd int
}

// New creates a network namespace with its loopback interface up.
func New() (*NS, error) {
	type result struct {
		fd  int
		err error
	}
	c := make(chan result)
	go func() {
		// The thread is never unlocked: it leaves the runtime with this goroutine,
		// so no other goroutine ever runs in the new namespace by accident.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			c <- result{-1, fmt.Errorf("netns: unshare: %w", err)}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			c <- result{-1, fmt.Errorf("netns: open: %w", err)}
			return
		}
		// Tests send to loopback addresses inside the namespace, so a loopback that
		// stays down is a failure to report, not a detail.
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			err = fmt.Errorf("netns: loopback up: %w", err)
		}
		c <- result{fd, err}
	}()
	r := <-c
	if r.err != nil {
		if r.fd >= 0 {
			unix.Close(r.fd)
		}
		return nil, r.err
	}
	return &NS{fd: r.fd}, nil
}

// FD returns the namespace's file descriptor, e.g. for netlink.LinkSetNsFd.
func (n *NS) FD() int { return n.fd }

// Do runs f on a fresh OS thread inside the namespace and waits for it. Sockets, tun
// fds and netlink requests made by f belong to the namespace; goroutines that f starts
// do not run in it.
func (n *NS) Do(f func() error) error {
	c := make(chan error, 1)
	go func() {
		returned := false
		defer func() {
			if !returned { // runtime.Goexit, e.g. t.Fatal called from f
				c <- errors.New("netns: function run by Do did not return")
			}
		}()
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			returned = true
			c <- fmt.Errorf("netns: setns: %w", err)
			return
		}
		err := f()
		returned = true
		c <- err
	}()
	return <-c
}

// Close releases the namespace.
func (n *NS) Close() error {
	if n.fd < 0 {
		return nil
	}
	err := unix.Close(n.fd)
	n.fd = -1
	return err
}

// Privileged reports whether this process can create network namespaces and tun
// devices, and if not, why.
func Privileged() (bool, string) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, err.Error()
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, err.Error()
			}
			if caps&(1<<unix.CAP_NET_ADMIN) == 0 {
				return false, "needs CAP_NET_ADMIN (run the tests as root)"
			}
			if caps&(1<<unix.CAP_SYS_ADMIN) == 0 {
				return false, "needs CAP_SYS_ADMIN to create network namespaces (run the tests as root)"
			}
		}
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, "cannot open /dev/net/tun: " + err.Error()
	}
	unix.Close(fd)
	return true, ""
}

// Require skips the test when the process is not privileged, or fails it when the
// environment variable WINTUN_REQUIRE_PRIVILEGED is 1 (as in CI), so that a run
// without privileges can never pass for one that tested the kernel.
func Require(t testing.TB) {
	t.Helper()
	if ok, why := Privileged(); !ok {
		if os.Getenv("WINTUN_REQUIRE_PRIVILEGED") == "1" {
			t.Fatalf("privileged test cannot run: %s (WINTUN_REQUIRE_PRIVILEGED=1)", why)
		}
		t.Skipf("privileged test skipped: %s (set WINTUN_REQUIRE_PRIVILEGED=1 to make this a failure)", why)
	}
}

// ForTest creates a namespace that is closed when the test ends.
func ForTest(t testing.TB) *NS {
	t.Helper()
	Require(t)
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}
