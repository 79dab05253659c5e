package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"go.wintun.dev/wintun"
	wgtun "golang.zx2c4.com/wireguard/tun"
)

// The forwarder runs as its own process, in a network namespace of its own: it creates
// two tun devices there, moves them into the two benchmark namespaces, says "ready",
// and copies every packet read from one device to the other until SIGTERM. Then it
// prints its counters as JSON.

type counters struct {
	Packets   atomic.Uint64 // packets written to a device
	Drops     atomic.Uint64 // packets it had no room for
	RingDrops atomic.Uint64 // this library: packets dropped because a receive ring was full
}

type forwardResult struct {
	Packets   uint64 `json:"packets"`
	Drops     uint64 `json:"drops"`
	RingDrops uint64 `json:"ring_drops,omitempty"`
}

// pump copies packets one way until stop is closed or the source fails.
type pump func(stop <-chan struct{}, c *counters)

func forwardMain(impl, nameA, nameB, nsA, nsB string) error {
	var pumps []pump
	var closers []func()
	var c counters
	switch impl {
	case "wintun", "wintun-batch", "wintun-mq":
		// wintun: the Wintun calls, one packet at a time. wintun-batch: the batch
		// calls on WithGSO sessions. wintun-mq: the same with two queues per adapter,
		// each with its own pumps, so that the kernel spreads flows over both cores.
		queues, pumpOf, opts := 1, wintunPump, []wintun.SessionOption(nil)
		if impl != "wintun" {
			pumpOf, opts = wintunBatchPump, []wintun.SessionOption{wintun.WithGSO()}
		}
		if impl == "wintun-mq" {
			queues = 2
		}
		a, sa, err := wintunSide(nameA, nsA, queues, opts...)
		if err != nil {
			return err
		}
		b, sb, err := wintunSide(nameB, nsB, queues, opts...)
		if err != nil {
			return err
		}
		closers = append(closers, func() {
			c.RingDrops.Store(a.Stats().ReceiveDropsRingFull + b.Stats().ReceiveDropsRingFull)
			for i := range sa {
				sa[i].End()
				sb[i].End()
			}
			a.Close()
			b.Close()
		})
		for i := range sa {
			pumps = append(pumps, pumpOf(sa[i], sb[i]), pumpOf(sb[i], sa[i]))
		}
	case "wireguard-go":
		a, b, err := both(wireguardSide, nameA, nsA, nameB, nsB)
		if err != nil {
			return err
		}
		closers = append(closers, func() { a.Close(); b.Close() })
		pumps = []pump{wireguardPump(a, b), wireguardPump(b, a)}
	case "direct":
		a, b, err := both(directSide, nameA, nsA, nameB, nsB)
		if err != nil {
			return err
		}
		pumps = []pump{directPump(a, b), directPump(b, a)}
	case "water":
		a, b, err := both(waterSide, nameA, nsA, nameB, nsB)
		if err != nil {
			return err
		}
		closers = append(closers, func() { a.Close(); b.Close() })
		pumps = []pump{waterPump(a, b), waterPump(b, a)}
	default:
		return fmt.Errorf("unknown forwarder %q", impl)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range pumps {
		wg.Add(1)
		go func() { defer wg.Done(); p(stop, &c) }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	stopProfile, err := startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	fmt.Println("ready")
	<-sig
	close(stop)
	for _, f := range closers {
		f()
	}
	wg.Wait()
	return json.NewEncoder(os.Stdout).Encode(forwardResult{c.Packets.Load(), c.Drops.Load(), c.RingDrops.Load()})
}

// both opens the two devices of a forwarder with open.
func both[T any](open func(name, ns string) (T, error), nameA, nsA, nameB, nsB string) (a, b T, err error) {
	if a, err = open(nameA, nsA); err == nil {
		b, err = open(nameB, nsB)
	}
	return a, b, err
}

// moveTo moves the interface name into the namespace mounted at nsPath.
func moveTo(name, nsPath string) error {
	f, err := os.Open(nsPath)
	if err != nil {
		return err
	}
	defer f.Close()
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetNsFd(l, int(f.Fd()))
}

// wintunSide creates an adapter with queues sessions and moves it into ns.
func wintunSide(name, ns string, queues int, opts ...wintun.SessionOption) (*wintun.Adapter, []*wintun.Session, error) {
	a, err := wintun.CreateAdapter(name, "Bench", nil)
	if err != nil {
		return nil, nil, err
	}
	var sessions []*wintun.Session
	for i := 0; i < queues; i++ {
		s, err := a.StartSession(ringCap(), opts...)
		if err != nil {
			return nil, nil, err
		}
		sessions = append(sessions, s)
	}
	return a, sessions, moveTo(name, ns)
}

// wintunPump uses the Wintun calls, one packet at a time.
func wintunPump(from, to *wintun.Session) pump {
	return func(stop <-chan struct{}, c *counters) {
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
				c.Packets.Add(1)
			} else {
				c.Drops.Add(1)
			}
			from.ReleaseReceivePacket(p)
		}
	}
}

// wintunBatchPump uses the batch calls on sessions started WithGSO: super-packets
// cross with their segmentation header, never split.
func wintunBatchPump(from, to *wintun.Session) pump {
	return func(stop <-chan struct{}, c *counters) {
		const batch = 128
		in, out := make([][]byte, batch), make([][]byte, batch)
		sizes := make([]int, batch)
		for {
			n, err := from.ReceivePackets(in)
			if err == wintun.ErrNoMoreItems {
				if _, ok := <-from.ReadWaitEvent(); !ok {
					return
				}
				continue
			}
			if err != nil {
				return
			}
			for i := 0; i < n; i++ {
				sizes[i] = len(in[i])
			}
			m, _ := to.AllocateSendPackets(sizes[:n], out)
			for i := 0; i < m; i++ {
				copy(out[i], in[i])
			}
			to.SendPackets(out[:m])
			from.ReleaseReceivePackets(in[:n])
			c.Packets.Add(uint64(m))
			c.Drops.Add(uint64(n - m))
		}
	}
}

func wireguardSide(name, ns string) (wgtun.Device, error) {
	d, err := wgtun.CreateTUN(name, 1500)
	if err != nil {
		return nil, err
	}
	go func() {
		for range d.Events() {
		}
	}()
	return d, moveTo(name, ns)
}

// wireguardPump is how wireguard-go moves packets: batches of BatchSize with the
// virtio header's headroom, TSO on read and GRO on write.
func wireguardPump(from, to wgtun.Device) pump {
	return func(stop <-chan struct{}, c *counters) {
		const offset = 16
		n := from.BatchSize()
		bufs := make([][]byte, n)
		sizes := make([]int, n)
		for i := range bufs {
			bufs[i] = make([]byte, offset+65535)
		}
		out := make([][]byte, 0, n)
		for {
			k, err := from.Read(bufs, sizes, offset)
			if err != nil {
				return
			}
			out = out[:0]
			for i := 0; i < k; i++ {
				out = append(out, bufs[i][:offset+sizes[i]])
			}
			if _, err := to.Write(out, offset); err != nil {
				select {
				case <-stop:
					return
				default:
				}
				c.Drops.Add(uint64(k))
				continue
			}
			c.Packets.Add(uint64(k))
		}
	}
}

func waterSide(name, ns string) (*water.Interface, error) {
	ifc, err := water.New(water.Config{DeviceType: water.TUN, PlatformSpecificParams: water.PlatformSpecificParams{Name: name}})
	if err != nil {
		return nil, err
	}
	return ifc, moveTo(name, ns)
}

// waterPump is one read and one write system call per packet.
func waterPump(from, to *water.Interface) pump {
	return func(stop <-chan struct{}, c *counters) {
		buf := make([]byte, 65535)
		for {
			n, err := from.Read(buf)
			if err != nil {
				return
			}
			if _, err := to.Write(buf[:n]); err != nil {
				c.Drops.Add(1)
				continue
			}
			c.Packets.Add(1)
		}
	}
}

// startProfile starts a CPU profile of this process into the file BENCH_CPUPROFILE
// names, if it names one.
func startProfile() (stop func(), err error) {
	path := os.Getenv("BENCH_CPUPROFILE")
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// ringCap is the ring capacity of this library's forwarders: BENCH_RING (bench -ring),
// or 8 MiB, wireguard-go's choice on Windows.
func ringCap() uint32 {
	if v, err := strconv.ParseUint(os.Getenv("BENCH_RING"), 0, 32); err == nil {
		return uint32(v)
	}
	return 0x800000
}
