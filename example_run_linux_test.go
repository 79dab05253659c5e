package wintun_test

import (
	"net/netip"
	"testing"
	"time"

	"go.wintun.dev/wintun/internal/netns"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestExampleAnswersPing runs the package Example, which needs root and so has no
// Output to be checked by go test, in a namespace: the kernel's ping to the
// addresses its doc names must be answered, over IPv4 and IPv6, and the Example must
// return once its adapter is deleted.
func TestExampleAnswersPing(t *testing.T) {
	ns := netns.ForTest(t)
	done := make(chan error, 1)
	go func() { done <- ns.Do(func() error { Example(); return nil }) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var up bool
		ns.Do(func() error {
			l, err := netlink.LinkByName("ping0")
			up = err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
			return nil
		})
		if up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Example's adapter ping0 did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range []struct{ local, remote string }{
		{"10.6.8.1", "10.6.8.2"},
		{"fd00:6:8::1", "fd00:6:8::2"},
	} {
		if err := netns.Ping(ns, netip.MustParseAddr(c.local), netip.MustParseAddr(c.remote), 5*time.Second); err != nil {
			t.Error(err)
		}
	}
	if err := ns.Do(func() error {
		return netlink.LinkDel(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "ping0"}})
	}); err != nil {
		t.Fatal(err)
	}
	waitReturn(t, done)
}

// TestExampleForwards runs the forwarder Example as its doc says: fwd0 moved into one
// namespace and fwd1 into another, each with an address; a ping from one to the other
// crosses the program, and deleting one adapter ends it.
func TestExampleForwards(t *testing.T) {
	home, nsA, nsB := netns.ForTest(t), netns.ForTest(t), netns.ForTest(t)
	done := make(chan error, 1)
	go func() { done <- home.Do(func() error { ExampleSession_ReceivePackets(); return nil }) }()
	// Both sessions run (their carriers are on) before the adapters move.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		up := 0
		home.Do(func() error {
			for _, name := range []string{"fwd0", "fwd1"} {
				if l, err := netlink.LinkByName(name); err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0 {
					up++
				}
			}
			return nil
		})
		if up == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Example's adapters fwd0 and fwd1 did not come up")
		}
	}
	for name, c := range map[string]struct {
		ns   *netns.NS
		addr string
	}{"fwd0": {nsA, "10.6.10.1/24"}, "fwd1": {nsB, "10.6.10.2/24"}} {
		if err := home.Do(func() error {
			link, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			return netlink.LinkSetNsFd(link, c.ns.FD())
		}); err != nil {
			t.Fatal(err)
		}
		if err := c.ns.Do(func() error {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			a, _ := netlink.ParseAddr(c.addr)
			a.Flags = unix.IFA_F_NODAD
			if err := netlink.AddrAdd(l, a); err != nil {
				return err
			}
			return netlink.LinkSetUp(l)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := netns.Ping(nsA, netip.MustParseAddr("10.6.10.1"), netip.MustParseAddr("10.6.10.2"), 5*time.Second); err != nil {
		t.Errorf("ping 10.6.10.2 from fwd0's namespace: %v", err)
	}
	if err := nsB.Do(func() error {
		return netlink.LinkDel(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "fwd1"}})
	}); err != nil {
		t.Fatal(err)
	}
	waitReturn(t, done)
}

// waitReturn waits for an Example run in a goroutine to return once its adapter is
// deleted.
func waitReturn(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the Example did not return after its adapter was deleted")
	}
}
