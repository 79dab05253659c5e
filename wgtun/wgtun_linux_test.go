package wgtun_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/wgtun"
)

// checkGoroutines fails the test if, a few seconds after it ends, more goroutines run
// than before it started. Register it first: cleanups run last-in first-out, so it
// runs after every other cleanup of the test.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var now int
		for i := 0; i < 500; i++ {
			if now = runtime.NumGoroutine(); now <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before the test, %d after:\n%s", before, now, buf[:runtime.Stack(buf, true)])
	})
}

// nsBind is wireguard-go's default UDP bind whose sockets are always opened inside
// one network namespace. wireguard-go opens its bind from whichever goroutine brings
// the device up, including its own event goroutine when the tun device reports
// EventUp; in a test that runs two namespaces in one process, that thread may be in
// another namespace. A socket stays in the namespace it was opened in, so the rest
// of the bind may run anywhere.
type nsBind struct {
	conn.Bind
	ns *netns.NS
}

func (b *nsBind) Open(port uint16) (fns []conn.ReceiveFunc, actual uint16, err error) {
	if derr := b.ns.Do(func() error {
		fns, actual, err = b.Bind.Open(port)
		return nil
	}); derr != nil {
		return nil, 0, derr
	}
	return fns, actual, err
}

// key is a WireGuard (Curve25519) key pair.
type key struct{ private, public []byte }

func newKey(t *testing.T) key {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key{k.Bytes(), k.PublicKey().Bytes()}
}

// peer is one end of the tunnel: a wireguard-go device on a wintun adapter in its
// own namespace.
type peer struct {
	ns      *netns.NS
	adapter *wintun.Adapter
	tun     *wgtun.Device
	dev     *device.Device
	addr4   netip.Addr // tunnel addresses
	addr6   netip.Addr
}

// startPeer creates adapter name in ns with the tunnel addresses, wraps it with
// wgtun and runs a wireguard-go device on it that listens on port and talks to one
// peer at endpoint. Everything is done on the namespace's thread, so the adapter,
// the link monitor and the UDP sockets all belong to ns.
func startPeer(t *testing.T, ns *netns.NS, name string, self, other key, port int, endpoint string, addr4, addr6, peer4, peer6 string) *peer {
	t.Helper()
	p := &peer{ns: ns, addr4: netip.MustParsePrefix(addr4).Addr(), addr6: netip.MustParsePrefix(addr6).Addr()}
	level := device.LogLevelSilent
	if testing.Verbose() {
		level = device.LogLevelVerbose
	}
	uapi := strings.Join([]string{
		"private_key=" + hex.EncodeToString(self.private),
		fmt.Sprintf("listen_port=%d", port),
		"replace_peers=true",
		"public_key=" + hex.EncodeToString(other.public),
		"endpoint=" + endpoint,
		"replace_allowed_ips=true",
		"allowed_ip=" + peer4,
		"allowed_ip=" + peer6,
		"",
	}, "\n")
	err := ns.Do(func() error {
		var err error
		if p.adapter, err = wintun.CreateAdapter(name, "WireGuard", nil, wintun.WithMTU(device.DefaultMTU)); err != nil {
			return err
		}
		for _, a := range []string{addr4, addr6} {
			if err := p.adapter.AddAddress(netip.MustParsePrefix(a)); err != nil {
				return err
			}
		}
		if p.tun, err = wgtun.New(p.adapter); err != nil {
			return err
		}
		p.dev = device.NewDevice(p.tun, &nsBind{conn.NewDefaultBind(), ns}, device.NewLogger(level, "("+name+") "))
		if err := p.dev.IpcSet(uapi); err != nil {
			return fmt.Errorf("IpcSet: %w", err)
		}
		return p.dev.Up()
	})
	t.Cleanup(func() {
		if p.dev != nil {
			p.dev.Close() // closes p.tun too
		} else if p.tun != nil {
			p.tun.Close()
		}
		if p.adapter != nil {
			ns.Do(func() error { return p.adapter.Close() })
		}
	})
	if err != nil {
		t.Fatalf("peer %s: %v", name, err)
	}
	return p
}

// vethPair joins two namespaces with a veth pair: created in a, one end moved to b.
func vethPair(t *testing.T, a, b *netns.NS, addrA, addrB string) {
	t.Helper()
	err := a.Do(func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "wgveth0"}, PeerName: "wgveth1"}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		other, err := netlink.LinkByName("wgveth1")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetNsFd(other, b.FD()); err != nil {
			return fmt.Errorf("move veth end: %w", err)
		}
		return linkUp("wgveth0", addrA)
	})
	if err == nil {
		err = b.Do(func() error { return linkUp("wgveth1", addrB) })
	}
	if err != nil {
		t.Fatal(err)
	}
}

func linkUp(name, addr string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(link, a); err != nil {
		return fmt.Errorf("address %s on %s: %w", addr, name, err)
	}
	return netlink.LinkSetUp(link)
}

// TestWireGuardEndToEnd runs two wireguard-go devices on wintun adapters, in two
// namespaces joined by a veth pair, and sends pings and TCP through the tunnel.
func TestWireGuardEndToEnd(t *testing.T) {
	checkGoroutines(t)
	nsA, nsB := netns.ForTest(t), netns.ForTest(t)
	vethPair(t, nsA, nsB, "192.168.77.1/24", "192.168.77.2/24")
	keyA, keyB := newKey(t), newKey(t)
	a := startPeer(t, nsA, "wga", keyA, keyB, 51820, "192.168.77.2:51821",
		"10.100.0.1/24", "fd00:100::1/64", "10.100.0.2/32", "fd00:100::2/128")
	b := startPeer(t, nsB, "wgb", keyB, keyA, 51821, "192.168.77.1:51820",
		"10.100.0.2/24", "fd00:100::2/64", "10.100.0.1/32", "fd00:100::1/128")

	for _, c := range []struct {
		ns       *netns.NS
		src, dst netip.Addr
	}{
		{nsA, a.addr4, b.addr4}, {nsB, b.addr4, a.addr4},
		{nsA, a.addr6, b.addr6}, {nsB, b.addr6, a.addr6},
	} {
		start := time.Now()
		if err := netns.Ping(c.ns, c.src, c.dst, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("ping %v -> %v: reply after %v", c.src, c.dst, time.Since(start).Round(time.Millisecond))
	}

	netns.TransferTCP(t, nsA, nsB, netip.AddrPortFrom(b.addr4, 0).String(), 64<<20)
	netns.TransferTCP(t, nsB, nsA, netip.AddrPortFrom(a.addr6, 0).String(), 8<<20)

	for _, p := range []*peer{a, b} {
		st, ws := p.adapter.Stats(), p.tun.Stats()
		t.Logf("%s: %+v; %+v", p.adapter.Name(), st, ws)
		if ws.ReadDropsTooBig != 0 || ws.WriteDropsInvalid != 0 {
			t.Errorf("%s: unexpected drops: %+v", p.adapter.Name(), ws)
		}
	}
}

// TestCloseUnblocksRead checks that Close wakes a Read waiting for packets, closes
// Events, and leaves no goroutine behind; and that Close is idempotent.
func TestCloseUnblocksRead(t *testing.T) {
	checkGoroutines(t)
	ns := netns.ForTest(t)
	_, d := newDevice(t, ns, "wgclose")
	errc := make(chan error, 1)
	go func() {
		bufs := [][]byte{make([]byte, 2000)}
		sizes := make([]int, 1)
		for {
			// Packets the kernel sends on its own (e.g. IPv6 router solicitations)
			// may arrive first; only the error counts.
			if _, err := d.Read(bufs, sizes, 16); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); d.Close() }()
	}
	wg.Wait()
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("Read after Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still blocked 10 s after Close")
	}
	for range d.Events() {
	}
	if _, err := d.Write([][]byte{make([]byte, 40)}, 0); err == nil {
		t.Error("Write after Close succeeded")
	}
}
