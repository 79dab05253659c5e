package wintun

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Session is a pair of rings attached to one queue of an adapter. Two goroutines play
// the driver's part (the pump, with an engine that talks to the kernel): one reads
// bundles of packets from the kernel into the receive ring, the other writes what the
// application commits to the send ring to the kernel.
//
// All methods are safe for concurrent use, and none makes a system call except End.
type Session struct {
	adapter *Adapter
	capture Capture  // nil unless WithCapture
	gso     bool     // packets carry a virtio_net_hdr (WithGSO)
	vnetHdr bool     // the queue's reads and writes carry a virtio_net_hdr (IFF_VNET_HDR)
	adopted bool     // from AdoptSession: the host owns the device and its carrier
	tcpGRO  bool     // coalesce TCP segments before writing (WithCoalescing)
	udpGRO  bool     // coalesce UDP datagrams before writing
	file    *os.File // the tun queue
	conn    syscall.RawConn
	eng     engine // moves packets between the queue and the pump

	_   cacheLinePad
	rx  ringReader // kernel to application
	_   cacheLinePad
	tx  ringWriter // application to kernel
	_   cacheLinePad
	txr *ring

	readEvent chan struct{} // auto-reset event: a token per Tail move of rx
	txWake    chan struct{} // wakes the writer when Alertable was set

	endOnce    sync.Once
	ended      atomic.Bool
	cause      error         // ErrSessionEnded, ErrAdapterGone or ErrInvalidData; set before ended
	done       chan struct{} // closed when the session starts ending
	writerDone chan struct{}
	finished   chan struct{} // closed once both goroutines are gone
}

// StartSession attaches a new queue to the adapter with a pair of rings of capacity
// bytes each: a power of two from RingCapacityMin to RingCapacityMax. Several sessions
// may run on one adapter; the kernel spreads flows over their queues. The tun queue is
// opened from the calling goroutine, in its thread's network namespace, where the
// adapter must be.
//
// The kernel queues the packets it sends through the adapter before the session
// reads them; StartSession lengthens that queue (the device's txqueuelen, never
// shortened) to hold as many packets as the receive ring can, up to 8,192, so that
// a burst of that many packets is lost only when the ring cannot hold it. That
// needs CAP_NET_ADMIN; without it the queue stays as it is and a warning is logged.
// Whatever the kernel drops there is counted in Stats.ReceiveDropsKernel.
func (a *Adapter) StartSession(capacity uint32, opts ...SessionOption) (*Session, error) {
	if err := checkCapacity(capacity); err != nil {
		return nil, err
	}
	var cfg sessionConfig
	for _, o := range opts {
		o(&cfg)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, fmt.Errorf("wintun: start session on %q: %w", a.name, ErrSessionEnded)
	}
	// Attaching by name to a device that has gone would create a new one: check that
	// the name is still this adapter before and after.
	link, guid, _, err := lookup(a.name)
	if err != nil || guid != a.guid {
		return nil, fmt.Errorf("wintun: start session on %q: not in this network namespace any more: %w", a.name, ErrAdapterGone)
	}
	fd := -1
	fail := func(err error) (*Session, error) {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, err
	}
	if fd, err = openQueue(a.name, tunFlags, true); err != nil {
		return fail(err)
	}
	if _, guid, _, err := lookup(a.name); err != nil || guid != a.guid {
		return fail(fmt.Errorf("wintun: start session on %q: %w", a.name, ErrAdapterGone))
	}
	uso, err := setOffload(fd, link, cfg.gso)
	if err != nil {
		return fail(err)
	}
	raiseKernelQueue(link, capacity)
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETCARRIER, 1); err != nil {
		return fail(fmt.Errorf("wintun: start session on %q: carrier on: %w", a.name, err))
	}
	s, err := newSession(a, fd, capacity, &cfg, true, uso)
	fd = -1 // newSession owns it now
	if err != nil {
		return fail(err)
	}
	holdCarrier(a.guid)
	a.sessions[s] = struct{}{}
	s.start()
	waitOperUp(a.name)
	return s, nil
}

// newSession makes a session of the attached, non-blocking tun queue fd, which it
// owns from then on (it closes fd on error). vnetHdr says whether the queue's packets
// carry a virtio_net_hdr, uso whether the kernel takes UDP super-packets. The caller
// registers the session with a and then starts it.
func newSession(a *Adapter, fd int, capacity uint32, cfg *sessionConfig, vnetHdr, uso bool) (*Session, error) {
	file := os.NewFile(uintptr(fd), "/dev/net/tun")
	conn, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("wintun: session on %q: %w", a.name, err)
	}
	// Coalesced super-packets need a virtio_net_hdr to describe them.
	tcpGRO, udpGRO := coalesce(cfg)
	canCoalesce := vnetHdr && !cfg.gso
	s := &Session{
		adapter:    a,
		gso:        cfg.gso,
		vnetHdr:    vnetHdr,
		tcpGRO:     tcpGRO && canCoalesce,
		udpGRO:     udpGRO && uso && canCoalesce,
		capture:    cfg.capture,
		file:       file,
		conn:       conn,
		rx:         ringReader{r: newRing(capacity)},
		txr:        newRing(capacity),
		readEvent:  make(chan struct{}, 1),
		txWake:     make(chan struct{}, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		finished:   make(chan struct{}),
	}
	s.tx.r = s.txr
	s.eng = newEngine(s, cfg)
	return s, nil
}

// start runs the session's reader and writer.
func (s *Session) start() {
	go s.receiveLoop()
	go s.sendLoop()
}

// End ends the session: it detaches the queue, wakes every goroutine waiting on
// ReadWaitEvent (the channel is closed) and makes every call return ErrSessionEnded.
// Packets still in the rings are dropped; slices already handed out stay valid memory.
// End is idempotent and returns once the session's goroutines are gone.
func (s *Session) End() {
	s.shutdown(ErrSessionEnded)
	<-s.finished
}

// shutdown starts ending the session for the given cause; the first cause wins.
func (s *Session) shutdown(cause error) {
	s.endOnce.Do(func() {
		s.cause = cause
		s.ended.Store(true)
		close(s.done)
		if !s.adopted {
			s.releaseCarrier()
		}
		s.eng.stop()
		s.file.Close() // wakes a reader or writer waiting in the poller
		s.adapter.mu.Lock()
		delete(s.adapter.sessions, s)
		s.adapter.mu.Unlock()
		if cause != ErrSessionEnded {
			logWarn("wintun: session ended", "adapter", s.adapter.name, "cause", cause)
		}
	})
}

func (s *Session) err() error {
	if s.ended.Load() {
		return s.cause
	}
	return nil
}

// ringErr turns a ring's end of file into the reason the session ended: a ring
// reaches its end of life only when the session ends or the adapter goes away.
func (s *Session) ringErr(err error) error {
	if err != errRingEOF {
		return err
	}
	if err = s.err(); err == nil {
		err = ErrAdapterGone
	}
	return err
}

// ReadWaitEvent returns a channel that receives after packets arrive; wait on it when
// ReceivePacket reports ErrNoMoreItems. It is closed when the session ends or the
// adapter goes away. A packet that arrives while the reader decides to wait always
// leaves a token in the channel, so no wake-up is missed.
func (s *Session) ReadWaitEvent() <-chan struct{} { return s.readEvent }

// ReceivePacket returns the next packet the operating system sent through the adapter,
// as a slice into the receive ring: its space stays taken until ReleaseReceivePacket.
// It returns ErrNoMoreItems when the ring is empty, an io.EOF error once the session
// has ended or the adapter is gone, and ErrInvalidData if the ring is corrupt.
func (s *Session) ReceivePacket() ([]byte, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	p, err := s.rx.receive()
	return p, s.ringErr(err)
}

// ReleaseReceivePacket gives back the ring space of a packet from ReceivePacket.
// Packets may be released in any order; the space returns to the kernel side as soon
// as every packet received before it is released too. Only the exact slice that
// ReceivePacket returned releases a packet: a slice that is not a held packet of this
// session (a sub-slice, one already released) is ignored and logged. A stale slice of
// a packet released earlier cannot be told from a new packet that the ring has since
// placed at the same spot with the same length: releasing it twice releases that one.
func (s *Session) ReleaseReceivePacket(packet []byte) {
	if !s.rx.release(packet) && !s.ended.Load() {
		logWarn("wintun: ReleaseReceivePacket: not a packet held from this session", "adapter", s.adapter.name)
	}
}

// AllocateSendPacket reserves ring space for a packet of exactly size bytes (1 to
// PacketSizeMax) and returns it, to be filled in and handed to SendPacket. The kernel
// receives packets in the order they were allocated. A full ring gives
// ErrBufferOverflow at once; the caller drops the packet or tries again later.
func (s *Session) AllocateSendPacket(size int) ([]byte, error) {
	if err := checkSize(size); err != nil {
		return nil, err
	}
	if err := s.err(); err != nil {
		return nil, err
	}
	p, err := s.tx.allocate(size)
	return p, s.ringErr(err)
}

// SendPacket commits a packet from AllocateSendPacket. Packets may be committed in any
// order. Only the exact slice that AllocateSendPacket returned commits a packet: a
// slice that is not an uncommitted packet of this session (a sub-slice, one already
// committed) is ignored and logged. Packets that are not IPv4 or IPv6 are dropped and counted in
// Stats.SendDiscardsInvalid.
func (s *Session) SendPacket(packet []byte) {
	if !s.tx.commit(packet) {
		if !s.ended.Load() {
			logWarn("wintun: SendPacket: not a packet allocated from this session", "adapter", s.adapter.name)
		}
		return
	}
	s.wakeWriter()
}

// gone reports whether a read or write error means that the queue is no longer
// attached to a device: the kernel answers EBADFD once the device is deleted. (EIO
// only means that the device is down, e.g. just after a move to another namespace.)
func gone(err error) bool {
	return errors.Is(err, unix.EBADFD)
}

// zeroHeader precedes every packet of a plain session on its way to the kernel: no
// segmentation, checksum complete.
var zeroHeader [GSOHeaderLen]byte

// valid applies Wintun's checks to the IP packet, after the header in GSO mode.
func (s *Session) valid(p []byte) bool {
	if s.gso {
		return len(p) > GSOHeaderLen && validPacket(p[GSOHeaderLen:])
	}
	return validPacket(p)
}

// ReceivePackets is ReceivePacket for a bundle: it stores up to len(packets) received
// packets, slices into the ring, in packets and returns how many. It returns
// ErrNoMoreItems when there is none, and the errors of ReceivePacket. It takes the
// ring's lock once, which matters to forwarders that move millions of packets.
func (s *Session) ReceivePackets(packets [][]byte) (int, error) {
	if err := s.err(); err != nil {
		return 0, err
	}
	if len(packets) == 0 {
		return 0, nil
	}
	n, err := s.rx.receiveBatch(packets)
	return n, s.ringErr(err)
}

// ReleaseReceivePackets releases packets from ReceivePacket or ReceivePackets, as
// ReleaseReceivePacket does for each.
func (s *Session) ReleaseReceivePackets(packets [][]byte) {
	if s.rx.releaseBatch(packets) > 0 && !s.ended.Load() {
		logWarn("wintun: ReleaseReceivePackets: not packets held from this session", "adapter", s.adapter.name)
	}
}

// AllocateSendPackets allocates one packet per entry of sizes, in order, into packets
// (which must be at least as long), and returns how many it allocated: fewer than
// len(sizes) with ErrBufferOverflow when the ring is full. Sizes are checked as in
// AllocateSendPacket before anything is allocated.
func (s *Session) AllocateSendPackets(sizes []int, packets [][]byte) (int, error) {
	if err := checkSizes(sizes, packets); err != nil {
		return 0, err
	}
	if err := s.err(); err != nil {
		return 0, err
	}
	n, err := s.tx.allocateBatch(sizes, packets)
	return n, s.ringErr(err)
}

// SendPackets commits packets from AllocateSendPacket or AllocateSendPackets, as
// SendPacket does for each, with a single wake-up of the kernel side.
func (s *Session) SendPackets(packets [][]byte) {
	if s.tx.commitBatch(packets) > 0 && !s.ended.Load() {
		logWarn("wintun: SendPackets: not packets allocated from this session", "adapter", s.adapter.name)
	}
	s.wakeWriter()
}

// wakeWriter wakes the kernel writer if it said it would sleep. Tail was published
// with a sequentially consistent store before this load, so either the writer re-reads
// Tail after setting Alertable or it gets this token: no missed wake-up.
func (s *Session) wakeWriter() {
	if atomic.LoadInt32(s.txr.alertable()) != 0 {
		select {
		case s.txWake <- struct{}{}:
		default:
		}
	}
}
