//go:build linux

// Command soak runs the two-namespace forwarder at full speed for a set time and
// reports throughput every interval, the drops by cause, and the heap and goroutine
// counts at the start and the end, to show that nothing grows.
//
// It needs root (it creates two network namespaces, each with an adapter, and nothing
// outside them): two sessions are joined by a forwarder in this process, and a TCP
// stream (or, with -udp, a UDP flood) crosses it from one namespace to the other.
//
//	go run ./tools/soak -d 5m
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
)

func main() {
	duration := flag.Duration("d", 5*time.Minute, "how long to run")
	interval := flag.Duration("i", 10*time.Second, "how often to report")
	capacity := flag.Uint("ring", 0x400000, "ring capacity of each session")
	udp := flag.Bool("udp", false, "a UDP flood instead of a TCP stream")
	flag.Parse()
	if err := checkCapacityFlag(*capacity); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	if ok, why := netns.Privileged(); !ok {
		fmt.Fprintln(os.Stderr, "soak:", why)
		os.Exit(1)
	}
	if err := run(*duration, *interval, uint32(*capacity), *udp); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func checkCapacityFlag(c uint) error {
	if c < wintun.RingCapacityMin || c > wintun.RingCapacityMax || c&(c-1) != 0 {
		return fmt.Errorf("-ring %#x: want a power of two from %#x to %#x", c, wintun.RingCapacityMin, wintun.RingCapacityMax)
	}
	return nil
}

type side struct {
	ns      *netns.NS
	adapter *wintun.Adapter
	session *wintun.Session
}

func setup(addr string, capacity uint32) (*side, error) {
	ns, err := netns.New()
	if err != nil {
		return nil, err
	}
	s := &side{ns: ns}
	err = ns.Do(func() error {
		var err error
		if s.adapter, err = wintun.CreateAdapter("wtsoak", "Soak", nil); err != nil {
			return err
		}
		if err := s.adapter.AddAddress(netip.MustParsePrefix(addr)); err != nil {
			return err
		}
		s.session, err = s.adapter.StartSession(capacity)
		return err
	})
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *side) close() {
	if s.session != nil {
		s.session.End()
	}
	if s.adapter != nil {
		s.ns.Do(func() error { return s.adapter.Close() })
	}
	s.ns.Close()
}

// forward copies every packet from one session to the other; a full send ring drops
// the packet, as a real forwarder would, and counts it.
func forward(from, to *wintun.Session, drops *atomic.Uint64) {
	for {
		p, err := from.ReceivePacket()
		if err == wintun.ErrNoMoreItems {
			if _, ok := <-from.ReadWaitEvent(); !ok {
				return
			}
			continue
		}
		if err != nil {
			return
		}
		if q, err := to.AllocateSendPacket(len(p)); err == nil {
			copy(q, p)
			to.SendPacket(q)
		} else {
			drops.Add(1)
		}
		from.ReleaseReceivePacket(p)
	}
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func run(duration, interval time.Duration, capacity uint32, udp bool) error {
	a, err := setup("10.230.0.1/24", capacity)
	if err != nil {
		return err
	}
	defer a.close()
	b, err := setup("10.230.0.2/24", capacity)
	if err != nil {
		return err
	}
	defer b.close()

	var sendRingFull atomic.Uint64
	var fwd sync.WaitGroup
	fwd.Add(2)
	go func() { defer fwd.Done(); forward(a.session, b.session, &sendRingFull) }()
	go func() { defer fwd.Done(); forward(b.session, a.session, &sendRingFull) }()
	defer func() { a.session.End(); b.session.End(); fwd.Wait() }()

	// Let the first transient allocations settle before the baseline.
	time.Sleep(200 * time.Millisecond)
	heap0, gor0 := heap(), runtime.NumGoroutine()
	fmt.Printf("soak: %s through two adapters and a forwarder, %v, rings %#x; %d CPUs, %s\n",
		map[bool]string{false: "TCP stream", true: "UDP flood"}[udp], duration, capacity, runtime.NumCPU(), runtime.Version())
	fmt.Printf("start: heap %.1f MiB, %d goroutines\n", float64(heap0)/(1<<20), gor0)

	var moved atomic.Uint64 // payload bytes delivered
	stop := make(chan struct{})
	errc := make(chan error, 2)
	if udp {
		go func() { errc <- udpFlood(a, b, stop, &moved) }()
	} else {
		go func() { errc <- tcpStream(a, b, stop, &moved) }()
	}

	start := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.After(duration)
	var last uint64
	lastT := start
	var min, maxr float64
	report := func(now time.Time) {
		m := moved.Load()
		rate := float64(m-last) * 8 / now.Sub(lastT).Seconds() / 1e9
		if min == 0 || rate < min {
			min = rate
		}
		maxr = max(maxr, rate)
		sa, sb := a.adapter.Stats(), b.adapter.Stats()
		fmt.Printf("%6.0fs %6.2f Gbit/s  ring-full drops %d/%d  forwarder send-ring-full %d  invalid %d  errors %d\n",
			now.Sub(start).Seconds(), rate, sa.ReceiveDropsRingFull, sb.ReceiveDropsRingFull, sendRingFull.Load(),
			sa.SendDiscardsInvalid+sb.SendDiscardsInvalid, sa.ReceiveErrors+sb.ReceiveErrors+sa.SendErrors+sb.SendErrors)
		last, lastT = m, now
	}
loop:
	for {
		select {
		case now := <-tick.C:
			report(now)
		case <-end:
			break loop
		case err := <-errc:
			return fmt.Errorf("traffic stopped after %v: %w", time.Since(start).Round(time.Second), err)
		}
	}
	close(stop)
	if err := <-errc; err != nil {
		return err
	}
	elapsed := time.Since(start)
	time.Sleep(200 * time.Millisecond) // the traffic's goroutines are gone
	heap1, gor1 := heap(), runtime.NumGoroutine()
	sa, sb := a.adapter.Stats(), b.adapter.Stats()
	fmt.Printf("summary: %v, %.2f GB moved, average %.2f Gbit/s (%v intervals: min %.2f, max %.2f)\n",
		elapsed.Round(time.Second), float64(moved.Load())/1e9, float64(moved.Load())*8/elapsed.Seconds()/1e9, interval, min, maxr)
	fmt.Printf("packets: A received %d sent %d, B received %d sent %d\n", sa.ReceivedPackets, sa.SentPackets, sb.ReceivedPackets, sb.SentPackets)
	fmt.Printf("drops: ring full A %d B %d, forwarder send ring full %d, invalid %d, errors %d\n",
		sa.ReceiveDropsRingFull, sb.ReceiveDropsRingFull, sendRingFull.Load(), sa.SendDiscardsInvalid+sb.SendDiscardsInvalid,
		sa.ReceiveErrors+sb.ReceiveErrors+sa.SendErrors+sb.SendErrors)
	fmt.Printf("end: heap %.1f MiB (start %.1f MiB), %d goroutines (start %d)\n", float64(heap1)/(1<<20), float64(heap0)/(1<<20), gor1, gor0)
	if gor1 > gor0 || heap1 > heap0+8<<20 {
		return errors.New("growth: more goroutines or over 8 MiB more heap at the end than at the start")
	}
	fmt.Println("no growth")
	return nil
}

// tcpStream sends a stream from A to B and checks it with SHA-256 every 64 MiB chunk:
// a connection per chunk, so that a corrupted or lost byte is caught.
func tcpStream(a, b *side, stop chan struct{}, moved *atomic.Uint64) error {
	var ln net.Listener
	if err := b.ns.Do(func() (err error) { ln, err = net.Listen("tcp", "10.230.0.2:5201"); return }); err != nil {
		return err
	}
	defer ln.Close()
	const chunk = 64 << 20
	buf := make([]byte, 1<<16)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for n := uint64(0); ; n++ {
		select {
		case <-stop:
			return nil
		default:
		}
		sums := make(chan [32]byte, 1)
		errc := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			h := sha256.New()
			if _, err := io.Copy(io.MultiWriter(h, counter{moved}), c); err != nil {
				errc <- err
				return
			}
			var s [32]byte
			h.Sum(s[:0])
			sums <- s
		}()
		var c net.Conn
		if err := a.ns.Do(func() (err error) { c, err = net.DialTimeout("tcp", "10.230.0.2:5201", 5*time.Second); return }); err != nil {
			return err
		}
		h := sha256.New()
		binary.BigEndian.PutUint64(buf, n)
		for sent := 0; sent < chunk; sent += len(buf) {
			c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write(buf); err != nil {
				c.Close()
				return err
			}
			h.Write(buf)
		}
		c.Close()
		var want [32]byte
		h.Sum(want[:0])
		select {
		case got := <-sums:
			if got != want {
				return fmt.Errorf("chunk %d: checksum mismatch", n)
			}
		case err := <-errc:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("chunk %d not received within 30 s", n)
		}
	}
}

type counter struct{ n *atomic.Uint64 }

func (c counter) Write(p []byte) (int, error) { c.n.Add(uint64(len(p))); return len(p), nil }

// udpFlood sends 1400-byte datagrams from A to B as fast as the socket takes them.
func udpFlood(a, b *side, stop chan struct{}, moved *atomic.Uint64) error {
	var rc, sc *net.UDPConn
	if err := b.ns.Do(func() (err error) {
		rc, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(10, 230, 0, 2), Port: 5202})
		return
	}); err != nil {
		return err
	}
	defer rc.Close()
	if err := a.ns.Do(func() (err error) {
		sc, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(10, 230, 0, 2), Port: 5202})
		return
	}); err != nil {
		return err
	}
	defer sc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := rc.Read(buf)
			if err != nil {
				return
			}
			moved.Add(uint64(n))
		}
	}()
	buf := make([]byte, 1400)
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		sc.Write(buf)
	}
}
