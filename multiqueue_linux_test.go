package wintun_test

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"
)

// TestMultiqueue runs two sessions on one adapter: the kernel spreads its flows over
// their queues, so that two goroutines (two cores) can share an adapter's traffic;
// every datagram arrives at exactly one of them.
func TestMultiqueue(t *testing.T) {
	ns := netns.ForTest(t)
	var a *wintun.Adapter
	var sessions [2]*wintun.Session
	if err := ns.Do(func() (err error) {
		if a, err = wintun.CreateAdapter("wtmq", "Test", nil); err != nil {
			return err
		}
		if err = a.AddAddress(netip.MustParsePrefix("10.230.0.1/24")); err != nil {
			return err
		}
		for i := range sessions {
			if sessions[i], err = a.StartSession(wintun.RingCapacityMin); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer ns.Do(func() error { return a.Close() })
	const flows, perFlow = 32, 10
	var counts [2]atomic.Int64
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				p, err := s.ReceivePacket()
				if err == wintun.ErrNoMoreItems {
					if _, ok := <-s.ReadWaitEvent(); !ok {
						return
					}
					continue
				}
				if err != nil {
					return
				}
				if in, err := packet.Parse(p); err == nil && in.Proto == packet.ProtoUDP && in.DstPort == 9000 {
					counts[i].Add(1)
				}
				s.ReleaseReceivePacket(p)
			}
		}()
	}
	// 32 flows: one socket each, so 32 source ports and as many flow hashes.
	if err := ns.Do(func() error {
		for f := 0; f < flows; f++ {
			c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(10, 230, 0, 2), Port: 9000})
			if err != nil {
				return err
			}
			for i := 0; i < perFlow; i++ {
				c.Write([]byte("multiqueue"))
			}
			c.Close()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for counts[0].Load()+counts[1].Load() < flows*perFlow && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, s := range sessions {
		s.End()
	}
	wg.Wait()
	t.Logf("datagrams per session: %d and %d", counts[0].Load(), counts[1].Load())
	if total := counts[0].Load() + counts[1].Load(); total != flows*perFlow {
		t.Errorf("%d datagrams received in all, want %d", total, flows*perFlow)
	}
	if counts[0].Load() == 0 || counts[1].Load() == 0 {
		t.Error("one session got every flow: the kernel did not spread them over the queues")
	}
}
