// Package wgtun turns a wintun adapter into a golang.zx2c4.com/wireguard/tun.Device, so
// that wireguard-go (device.NewDevice) runs on top of this library's rings.
//
// A Device reads and writes through one session of the adapter: Read drains every
// packet the receive ring holds (up to the caller's batch) with one wake-up, Write
// copies each packet into the send ring and commits it. Neither makes a system call;
// the session's goroutines do.
//
// The core package go.wintun.dev/wintun does not import wireguard-go; only this
// package does.
package wgtun

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.wintun.dev/wintun"
	"golang.zx2c4.com/wireguard/tun"
)

const (
	// DefaultRingCapacity is the capacity of each ring of the session New starts:
	// 8 MiB, as WireGuard for Windows uses, so that a burst of full-size packets from a
	// fast TCP sender does not overflow the ring before the kernel side drains it.
	DefaultRingCapacity = 0x800000
	// DefaultBatchSize is the batch size reported to wireguard-go: its largest UDP
	// batch (conn.IdealBatchSize), so one Read can hand a whole burst to one
	// encryption round.
	DefaultBatchSize = 128
	// DefaultWriteWait bounds how long one Write waits for room in a full send ring
	// before it drops the packets it still holds, on Linux. On Windows Write drops at
	// once by default, as wireguard-go's own tun does there.
	DefaultWriteWait = 100 * time.Millisecond
)

// ErrDropped is wrapped by the error Write returns when it dropped packets; the
// packets it did not drop were written.
var ErrDropped = errors.New("wgtun: packets dropped")

// Option configures New.
type Option func(*config)

type config struct {
	capacity     uint32
	batchSize    int
	writeWait    time.Duration
	writeWaitSet bool
	session      *wintun.Session
}

// WithRingCapacity sets the capacity of each ring of the session New starts (a power
// of two from wintun.RingCapacityMin to wintun.RingCapacityMax).
func WithRingCapacity(capacity uint32) Option { return func(c *config) { c.capacity = capacity } }

// WithBatchSize sets the value BatchSize reports (1 to 1024): the largest number of
// packets wireguard-go hands to one Read or Write.
func WithBatchSize(n int) Option { return func(c *config) { c.batchSize = n } }

// WithWriteWait sets how long one Write call may wait, in total, for room in a full
// send ring before it drops the rest of its packets. Zero drops at once.
func WithWriteWait(d time.Duration) Option {
	return func(c *config) { c.writeWait, c.writeWaitSet = d, true }
}

// WithSession makes the Device use a session the caller already started on the
// adapter, instead of starting its own. Close then leaves that session running: the
// caller ends it. No other reader may take packets from it while the Device runs.
func WithSession(s *wintun.Session) Option { return func(c *config) { c.session = s } }

// Stats counts the packets a Device dropped, in addition to the adapter's own
// wintun.Stats.
type Stats struct {
	// ReadDropsTooBig counts packets from the system that did not fit in the caller's
	// buffer after the offset.
	ReadDropsTooBig uint64
	// WriteDropsRingFull counts packets Write dropped because the send ring stayed
	// full for longer than the write wait.
	WriteDropsRingFull uint64
	// WriteDropsInvalid counts packets Write dropped because they were empty, larger
	// than wintun.PacketSizeMax, or the offset was outside the buffer.
	WriteDropsInvalid uint64
}

// Device is a tun.Device on a wintun adapter. All its methods are safe for concurrent
// use, as wireguard-go needs.
type Device struct {
	adapter     *wintun.Adapter
	session     *wintun.Session
	ownsSession bool
	batchSize   int
	writeWait   time.Duration
	spin        bool     // poll the ring briefly before waiting, under heavy traffic
	rate        readRate // what Read hands out, when spin is on

	mtu  atomic.Int64 // kept up to date by the link monitor
	name atomic.Pointer[string]

	events      chan tun.Event
	done        chan struct{} // closed by Close
	closeOnce   sync.Once
	monitorDone chan struct{} // closed once the link monitor and its helpers are gone

	readDropsTooBig, writeDropsFull, writeDropsInvalid atomic.Uint64
}

var _ tun.Device = (*Device)(nil)

// New returns a tun.Device on adapter. Unless WithSession is given it starts a session
// of DefaultRingCapacity (or WithRingCapacity) that Close ends. It must be called in
// the network namespace the adapter is in (on Linux its link monitor, a netlink
// socket, is opened there); the Device may then be used from any goroutine.
//
// Close does not close the adapter: the caller, who created or opened it, does that
// after closing the Device.
func New(adapter *wintun.Adapter, opts ...Option) (*Device, error) {
	if adapter == nil {
		return nil, errors.New("wgtun: nil adapter")
	}
	cfg := config{capacity: DefaultRingCapacity, batchSize: DefaultBatchSize, writeWait: DefaultWriteWait}
	for _, o := range opts {
		o(&cfg)
	}
	if !cfg.writeWaitSet && runtime.GOOS == "windows" {
		cfg.writeWait = 0
	}
	if cfg.batchSize < 1 || cfg.batchSize > 1024 {
		return nil, fmt.Errorf("wgtun: invalid batch size %d: want 1 to 1024", cfg.batchSize)
	}
	if cfg.writeWait < 0 {
		return nil, fmt.Errorf("wgtun: invalid write wait %v", cfg.writeWait)
	}
	mtu, err := adapter.MTU()
	if err != nil {
		return nil, fmt.Errorf("wgtun: %w", err)
	}
	d := &Device{
		adapter:     adapter,
		session:     cfg.session,
		batchSize:   cfg.batchSize,
		writeWait:   cfg.writeWait,
		spin:        spinBeforeWait,
		events:      make(chan tun.Event, 8),
		done:        make(chan struct{}),
		monitorDone: make(chan struct{}),
	}
	d.mtu.Store(int64(mtu))
	name := adapter.Name()
	d.name.Store(&name)
	if d.session == nil {
		if d.session, err = adapter.StartSession(cfg.capacity); err != nil {
			return nil, fmt.Errorf("wgtun: %w", err)
		}
		d.ownsSession = true
	}
	if err := d.startMonitor(); err != nil {
		if d.ownsSession {
			d.session.End()
		}
		return nil, fmt.Errorf("wgtun: link monitor on %q: %w", name, err)
	}
	return d, nil
}

// Adapter returns the adapter the Device runs on.
func (d *Device) Adapter() *wintun.Adapter { return d.adapter }

// Session returns the session the Device reads and writes through.
func (d *Device) Session() *wintun.Session { return d.session }

// Stats returns the Device's drop counters.
func (d *Device) Stats() Stats {
	return Stats{
		ReadDropsTooBig:    d.readDropsTooBig.Load(),
		WriteDropsRingFull: d.writeDropsFull.Load(),
		WriteDropsInvalid:  d.writeDropsInvalid.Load(),
	}
}

// File returns nil: a session has no single file descriptor to hand out (on Linux its
// tun queue belongs to the session's goroutines). wireguard-go's device package does
// not need one; only its command's daemon mode passes the tun fd to a child.
func (d *Device) File() *os.File { return nil }

// BatchSize returns the batch size chosen at creation (DefaultBatchSize unless
// WithBatchSize); it never changes.
func (d *Device) BatchSize() int { return d.batchSize }

// MTU returns the adapter's MTU as last seen: read at creation and updated from the
// link monitor, so that it answers for the adapter's own namespace whichever thread
// calls it.
func (d *Device) MTU() (int, error) { return int(d.mtu.Load()), nil }

// Name returns the adapter's interface name, as last seen by the link monitor.
func (d *Device) Name() (string, error) { return *d.name.Load(), nil }

// Events returns the channel of link events: EventUp once the link is up and running
// (at start, when it already is), EventDown when it stops running or disappears, and
// EventMTUUpdate when its MTU changes. It is closed by Close.
func (d *Device) Events() <-chan tun.Event { return d.events }

// closedErr maps a session error to what a tun.Device reports: os.ErrClosed after
// Close (wireguard-go then stops quietly), otherwise the session's error (an io.EOF
// error once the adapter is gone, ErrInvalidData for a corrupt ring), on which
// wireguard-go closes its device.
func (d *Device) closedErr(err error) error {
	select {
	case <-d.done:
		return os.ErrClosed
	default:
	}
	return fmt.Errorf("wgtun: %s: %w", *d.name.Load(), err)
}

// Read waits for packets and copies as many as are ready, up to len(bufs), into
// bufs[i][offset:], setting sizes[i]. On Windows, under heavy traffic, it polls the
// ring for a few microseconds before it waits, as wireguard-go's own tun does there. A packet longer than len(bufs[i])-offset is
// dropped and counted (Stats.ReadDropsTooBig). After Close it returns os.ErrClosed; if
// the session ends otherwise (adapter removed), an io.EOF error.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	max := min(len(bufs), len(sizes))
	if max == 0 {
		return 0, nil
	}
	s := d.session
	var spinStart int64
	for {
		n, bytes := 0, 0
		for n < max {
			p, err := s.ReceivePacket()
			if err == wintun.ErrNoMoreItems {
				break
			}
			if err != nil {
				if n > 0 {
					return n, nil // the error comes again on the next call
				}
				return 0, d.closedErr(err)
			}
			if offset < 0 || offset > len(bufs[n]) || len(p) > len(bufs[n])-offset {
				d.readDropsTooBig.Add(1)
				s.ReleaseReceivePacket(p)
				continue
			}
			sizes[n] = copy(bufs[n][offset:], p)
			bytes += sizes[n]
			s.ReleaseReceivePacket(p)
			n++
		}
		if n > 0 {
			if d.spin {
				d.rate.add(nanotime(), bytes)
			}
			return n, nil
		}
		if d.spin {
			now := nanotime()
			if spinStart == 0 {
				spinStart = now
			}
			if now-spinStart < int64(spinFor) && d.rate.high(now) {
				runtime.Gosched()
				continue
			}
		}
		select {
		case <-s.ReadWaitEvent(): // a token, or closed: either way try again
			spinStart = 0
		case <-d.done:
			return 0, os.ErrClosed
		}
	}
}

// Write sends bufs[i][offset:] for each i. A full send ring is waited on for at most
// the write wait (DefaultWriteWait) per call: Write yields the processor between tries
// at first, so that it goes on within microseconds of the kernel side making room,
// then sleeps briefly between tries, never past the end of the write wait. Packets
// still unsent then are dropped and counted (Stats.WriteDropsRingFull), since
// blocking wireguard-go's receive path longer would stall every peer. Invalid packets
// are dropped and counted too. Write returns the number of packets committed and, if
// some were dropped, an error wrapping ErrDropped; with a write wait of zero (the
// default on Windows) packets dropped for a full ring are counted only, and reported
// as written, as wireguard-go's own Windows tun does. After Close it returns
// os.ErrClosed.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	s := d.session
	written, tooBig, full := 0, 0, 0
	waitStart := int64(-1) // nanotime of the first full ring of this call
	for _, b := range bufs {
		if offset < 0 || offset >= len(b) || len(b)-offset > wintun.PacketSizeMax {
			tooBig++
			continue
		}
		p := b[offset:]
		for {
			out, err := s.AllocateSendPacket(len(p))
			if err == nil {
				copy(out, p)
				s.SendPacket(out)
				written++
				if d.spin {
					// Traffic in either direction makes the next empty Read spin.
					d.rate.add(nanotime(), len(p))
				}
				break
			}
			if err != wintun.ErrBufferOverflow {
				if written > 0 {
					return written, nil // the error comes again on the next call
				}
				return 0, d.closedErr(err)
			}
			now := nanotime()
			if waitStart < 0 {
				waitStart = now
			}
			pause, ok := writePause(time.Duration(now-waitStart), d.writeWait)
			if !ok {
				full++
				break
			}
			if pause == 0 {
				runtime.Gosched()
				continue
			}
			select {
			case <-d.done:
				return written, os.ErrClosed
			case <-time.After(pause):
			}
		}
	}
	if tooBig == 0 && full == 0 {
		return written, nil
	}
	d.writeDropsInvalid.Add(uint64(tooBig))
	d.writeDropsFull.Add(uint64(full))
	if d.writeWait == 0 && tooBig == 0 {
		// Dropping at once is the chosen behaviour, as a network card's: counted,
		// not an error that wireguard-go would log for every bundle under load.
		return written + full, nil
	}
	return written, fmt.Errorf("wgtun: write to %q: %w: %d invalid, %d for a full ring", *d.name.Load(), ErrDropped, tooBig, full)
}

// Close stops the Device: a pending Read returns os.ErrClosed, the Events channel is
// closed, and the session New started is ended. It returns once the Device's
// goroutines are gone, and is idempotent. The adapter stays open.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		close(d.done)
		if d.ownsSession {
			d.session.End()
		}
		<-d.monitorDone
	})
	return nil
}
