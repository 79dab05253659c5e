package wgtun

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
)

// TestReadSpinsThenWaits turns on the Windows behaviour on a Linux adapter: with
// heavy traffic measured, a Read that finds the ring empty polls, then waits, and
// returns the packet that arrives while it spins or waits, with the traffic counted.
func TestReadSpinsThenWaits(t *testing.T) {
	ns := netns.ForTest(t)
	var a *wintun.Adapter
	var d *Device
	if err := ns.Do(func() (err error) {
		if a, err = wintun.CreateAdapter("wtspin", "Test", nil); err != nil {
			return err
		}
		if err = a.AddAddress(netip.MustParsePrefix("10.202.0.1/24")); err != nil {
			return err
		}
		d, err = New(a)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ns.Do(func() error { return a.Close() })
	defer d.Close()
	d.spin = true
	now := nanotime()
	d.rate.windowStart.Store(now)
	d.rate.perSecond.Store(spinRate)
	if !d.rate.high(now) {
		t.Fatal("heavy traffic not seen as such")
	}
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 202, 0, 2), Port: 9})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, delay := range []time.Duration{0, 2 * time.Microsecond, 50 * time.Millisecond} {
		go func() {
			time.Sleep(delay)
			c.Write([]byte("spin"))
		}()
		bufs, sizes := [][]byte{make([]byte, 2000)}, []int{0}
		for {
			n, err := d.Read(bufs, sizes, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Skip what the kernel sends by itself (IPv6 router solicitations).
			if n == 1 && sizes[0] == 20+8+4 && bufs[0][0]>>4 == 4 {
				break
			}
		}
	}
	if d.rate.bytes.Load() == 0 {
		t.Error("the packets read were not counted")
	}
}
