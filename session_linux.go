package wintun

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"go.wintun.dev/wintun/internal/offload"
	"golang.org/x/sys/unix"
)

// Session is a pair of rings attached to one queue of an adapter. Two goroutines play
// the driver's part: one reads bundles of packets from the kernel into the receive
// ring, the other writes what the application commits to the send ring to the kernel.
//
// All methods are safe for concurrent use, and none makes a system call except End.
type Session struct {
	adapter *Adapter
	capture Capture      // nil unless WithCapture
	gso     bool         // packets carry a virtio_net_hdr (WithGSO)
	vnetHdr bool         // the queue's reads and writes carry a virtio_net_hdr (IFF_VNET_HDR)
	adopted bool         // from AdoptSession: the host owns the device and its carrier
	uso     bool         // the kernel takes UDP super-packets
	tcpGRO  bool         // coalesce TCP segments before writing (WithCoalescing)
	udpGRO  bool         // coalesce UDP datagrams before writing
	ur      *uringReader // io_uring engine, or nil for the poll engine
	uw      *uringWriter
	file    *os.File
	conn    syscall.RawConn

	rx  ringReader // kernel to application
	tx  ringWriter // application to kernel
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

// receiveBundle is how many packets the reader takes from the kernel before it
// publishes them to the application.
const receiveBundle = 32

// carrierUsers counts this process's sessions per adapter, and its lock orders the
// sessions that end together: the carrier is on while the adapter has a session, in
// any process (see releaseCarrier).
var carrierUsers = struct {
	sync.Mutex
	n map[GUID]int
}{n: map[GUID]int{}}

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
	carrierUsers.Lock()
	carrierUsers.n[a.guid]++
	carrierUsers.Unlock()
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
	var ur *uringReader
	var uw *uringWriter
	if engineUring(cfg) && !vnetHdr {
		// The io_uring engine reads and writes every packet with its virtio_net_hdr.
		logWarn("wintun: io_uring engine needs a queue with IFF_VNET_HDR; using the poll engine", "adapter", a.name)
	} else if engineUring(cfg) {
		if ur, err = newUringReader(fd); err == nil {
			if uw, err = newUringWriter(fd); err != nil {
				ur.close()
				ur = nil
			}
		}
		if err != nil {
			logWarn("wintun: io_uring not available; using the poll engine", "adapter", a.name, "err", err)
		}
	}
	// Coalesced super-packets need a virtio_net_hdr to describe them.
	tcpGRO, udpGRO := coalesce(cfg)
	canCoalesce := vnetHdr && !cfg.gso
	s := &Session{
		ur:         ur,
		uw:         uw,
		adapter:    a,
		gso:        cfg.gso,
		vnetHdr:    vnetHdr,
		uso:        uso,
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
	return s, nil
}

// start runs the session's reader and writer.
func (s *Session) start() {
	go s.receiveLoop()
	go s.sendLoop()
}

// waitOperUp waits, for at most a second, until the kernel has acted on the carrier
// change of an adapter that is up. The kernel does so asynchronously (linkwatch, then
// IPv6 address configuration): until the operational state is up it drops the packets
// it sends through the adapter, and until IPv6 addresses added while the carrier was
// off leave the tentative state it drops packets sent to them, so the first packets
// of a new session could be lost.
func waitOperUp(name string) {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		link, err := netlink.LinkByName(name)
		if err != nil || link.Attrs().Flags&net.FlagUp == 0 {
			return
		}
		if link.Attrs().OperState != netlink.OperUp {
			continue
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
		if err != nil || !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.Flags&unix.IFA_F_TENTATIVE != 0 }) {
			return
		}
	}
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
		s.file.Close() // wakes the reader blocked in the poller
		if s.ur != nil {
			s.ur.stop() // the same for the io_uring engine's reader
		}
		s.adapter.mu.Lock()
		delete(s.adapter.sessions, s)
		s.adapter.mu.Unlock()
		if cause != ErrSessionEnded {
			logWarn("wintun: session ended", "adapter", s.adapter.name, "cause", cause)
		}
	})
}

// releaseCarrier switches the carrier off when this session's queue is the last one
// attached to the device, whichever process the others belong to, and detaches the
// queue (at once: closing the file may wait for the reader), so that the next session
// to end counts right. Where the device's queues cannot be counted (an owner without
// CAP_NET_ADMIN may not look into the device's namespace) only this process's
// sessions count.
func (s *Session) releaseCarrier() {
	carrierUsers.Lock()
	defer carrierUsers.Unlock()
	carrierUsers.n[s.adapter.guid]--
	mine := carrierUsers.n[s.adapter.guid]
	if mine <= 0 {
		delete(carrierUsers.n, s.adapter.guid)
	}
	s.conn.Control(func(fd uintptr) {
		others, err := otherQueues(int(fd), s.adapter.name)
		if err != nil {
			others = mine
		}
		if others == 0 {
			unix.IoctlSetPointerInt(int(fd), unix.TUNSETCARRIER, 0)
			// A session of another process may have started in between and
			// switched the carrier on before this switched it off: look again.
			if others, err := otherQueues(int(fd), s.adapter.name); err == nil && others > 0 {
				unix.IoctlSetPointerInt(int(fd), unix.TUNSETCARRIER, 1)
			}
		}
		if ifr, err := unix.NewIfreq(s.adapter.name); err == nil {
			ifr.SetUint16(unix.IFF_DETACH_QUEUE)
			unix.IoctlIfreq(int(fd), unix.TUNSETQUEUE, ifr)
		}
	})
}

// otherQueues counts the queues attached to the device of the attached queue fd,
// besides fd's own, wherever the device is.
func otherQueues(fd int, name string) (int, error) {
	l, err := deviceLink(fd, name)
	if err != nil {
		return 0, err
	}
	t, ok := l.(*netlink.Tuntap)
	if !ok || t.Queues < 1 {
		return 0, fmt.Errorf("wintun: %q: no attached queue", name)
	}
	return t.Queues - 1, nil
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
	if size < 1 || size > PacketSizeMax {
		return nil, fmt.Errorf("wintun: invalid packet size %d: want 1 to %d", size, PacketSizeMax)
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

// receiveLoop moves packets from the kernel into the receive ring, a bundle at a time.
// A packet that does not fit is dropped and counted: the kernel is never kept waiting.
func (s *Session) receiveLoop() {
	rc := receiver{s: s, r: s.rx.r, st: &s.adapter.stats}
	cause := ErrSessionEnded
	if s.ur != nil {
		cause = s.receiveUring(&rc)
	}
	for s.ur == nil {
		var rerr error
		err := s.conn.Read(func(fd uintptr) bool { return rc.readBundle(int(fd), &rerr) })
		rc.publish()
		if err != nil {
			// Either shutdown closed the file, or the poller saw EPOLLERR, which the
			// tun driver reports once the device is gone.
			if !s.ended.Load() {
				cause = ErrAdapterGone
			}
			break
		}
		if rerr != nil {
			if gone(rerr) {
				cause = ErrAdapterGone
				break
			}
			rc.st.rxErrors.Add(1)
			logWarn("wintun: read from the kernel", "adapter", s.adapter.name, "err", rerr)
		}
	}
	s.shutdown(cause)
	if s.ur != nil {
		s.ur.close() // only now: shutdown writes to its eventfd
	}
	<-s.writerDone
	// End of life, as Wintun's driver marks it: indices at or above the capacity.
	atomic.StoreUint32(rc.r.tail(), ringEOF)
	atomic.StoreUint32(s.txr.head(), ringEOF)
	close(s.readEvent)
	close(s.finished)
}

// receiver is the state of receiveLoop: the producer side of the receive ring.
type receiver struct {
	s       *Session
	r       *ring
	st      *stats
	tail    uint32 // next free byte, published as Tail after each bundle
	n       int    // packets written since the last publication
	hdr     [GSOHeaderLen]byte
	scratch []byte // for a packet read while the ring is nearly full
	super   []byte // a super-packet being split
}

// publish makes the packets written since the last publication visible and signals
// ReadWaitEvent.
func (rc *receiver) publish() (signaled bool) {
	if rc.n == 0 {
		return false
	}
	atomic.StoreUint32(rc.r.tail(), rc.tail)
	rc.n = 0
	select {
	case rc.s.readEvent <- struct{}{}:
		return true
	default:
		return false
	}
}

func (rc *receiver) free() uint32 { return rc.r.free(atomic.LoadUint32(rc.r.head()), rc.tail) }

// readBundle reads up to receiveBundle packets; it reports false when it should wait
// for the fd to become readable.
func (rc *receiver) readBundle(fd int, rerr *error) bool {
	for reads := 0; reads < receiveBundle; reads++ {
		free := rc.free()
		// Read straight into the ring when any packet fits: the slack after the wrap
		// point makes this room contiguous. The buffer is one byte longer than a
		// record can be, so that a packet too long for one is seen, not truncated.
		direct := free >= alignRecord(PacketSizeMax)
		buf := rc.scratch
		if direct {
			buf = rc.r.mem[ringHeaderSize+rc.tail+recordHeader:][:PacketSizeMax+1]
		} else if buf == nil {
			rc.scratch = make([]byte, PacketSizeMax+1)
			buf = rc.scratch
		}
		var m int
		var err error
		if rc.s.gso || !rc.s.vnetHdr {
			m, err = unix.Read(fd, buf)
		} else if m, err = unix.Readv(fd, [][]byte{rc.hdr[:], buf}); err == nil {
			m -= GSOHeaderLen
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return rc.n > 0
		case err != nil:
			*rerr = err
			return true
		case m <= 0:
			rc.st.rxErrors.Add(1)
			continue
		}
		var h offload.Header // a WithGSO session keeps the header in the record
		if !rc.s.gso && rc.s.vnetHdr {
			h = offload.ParseHeader(rc.hdr[:])
		}
		rc.place(buf[:m], h, direct)
	}
	return true
}

// place puts a packet into the ring: committed where it is if it was read into the
// ring, copied otherwise. A plain session splits a super-packet described by h and
// completes a partial checksum.
func (rc *receiver) place(p []byte, h offload.Header, inRing bool) {
	switch {
	case len(p) > PacketSizeMax:
		rc.st.rxDropsOversize.Add(1)
	case h.GSOType != offload.GSONone:
		rc.split(p, h, inRing)
	case h.Flags&offload.FlagNeedsCsum != 0 && offload.CompleteChecksum(p, h) != nil:
		rc.st.rxErrors.Add(1)
	case inRing:
		rc.commit(uint32(len(p)))
	default:
		rc.copyIn(p)
	}
}

// commit completes the record at tail, whose data is in place.
func (rc *receiver) commit(size uint32) {
	*rc.r.size(rc.tail) = size
	if rc.s.capture != nil {
		rc.s.capture.CapturePacket(Received, time.Now(), rc.r.packet(rc.tail, size))
	}
	rc.tail = rc.r.wrap(rc.tail + alignRecord(size))
	rc.st.rxPackets.Add(1)
	rc.st.rxBytes.Add(uint64(size))
	rc.n++
}

// copyIn copies a packet into the ring, or counts it as dropped if it does not fit.
func (rc *receiver) copyIn(p []byte) {
	if alignRecord(uint32(len(p))) > rc.free() {
		rc.st.rxDropsFull.Add(1)
		return
	}
	copy(rc.r.mem[ringHeaderSize+rc.tail+recordHeader:], p)
	rc.commit(uint32(len(p)))
}

// split writes the ordinary packets of a super-packet into the ring, for a session
// that did not ask for super-packets.
func (rc *receiver) split(p []byte, h offload.Header, inRing bool) {
	if inRing { // the segments would overwrite it
		if rc.super == nil {
			rc.super = make([]byte, PacketSizeMax)
		}
		p = rc.super[:copy(rc.super, p)]
	}
	pending := -1
	err := offload.Split(p, h, func(size int) []byte {
		if pending >= 0 {
			rc.commit(uint32(pending))
			pending = -1
		}
		if alignRecord(uint32(size)) > rc.free() {
			rc.st.rxDropsFull.Add(1)
			return nil
		}
		pending = size
		return rc.r.packet(rc.tail, uint32(size))
	})
	if pending >= 0 {
		rc.commit(uint32(pending))
	}
	if err != nil {
		rc.st.rxErrors.Add(1)
		logWarn("wintun: malformed super-packet from the kernel", "adapter", rc.s.adapter.name, "err", err)
	}
	rc.st.rxSuperPackets.Add(1)
}

// writer is the state of sendLoop: the consumer side of the send ring.
type writer struct {
	s        *Session
	r        *ring
	st       *stats
	tcp, udp bool         // coalesce TCP segments, UDP datagrams into super-packets
	uw       *uringWriter // io_uring engine, or nil
	pkts     [][]byte     // the packets of one gathering
	afters   []uint32     // the ring offset after each of them
	hdr      [GSOHeaderLen]byte
	super    []byte // a coalesced super-packet
}

// writeBundle is how many committed packets the writer looks at together, for
// coalescing.
const writeBundle = 64

// gather collects up to writeBundle valid packets from head on. Invalid packets at the
// start are discarded and counted; one later ends the gathering.
func (w *writer) gather(head, tail uint32) error {
	w.pkts, w.afters = w.pkts[:0], w.afters[:0]
	for head != tail && len(w.pkts) < writeBundle {
		size, after, err := w.r.next(head, tail)
		if err != nil {
			return err
		}
		p := w.r.packet(head, size)
		if !w.s.valid(p) {
			if len(w.pkts) > 0 {
				break
			}
			w.st.txDiscardsInvalid.Add(1)
			// Nothing to write: publish the progress through a zero-length gathering.
			w.pkts = append(w.pkts, nil)
			w.afters = append(w.afters, after)
			return nil
		}
		w.pkts = append(w.pkts, p)
		w.afters = append(w.afters, after)
		head = after
	}
	return nil
}

// write writes the first of pkts, or a super-packet coalesced from the first ones, and
// returns how many packets it consumed. A nil packet is a discarded one.
func (w *writer) write(fd int, pkts [][]byte) (int, error) {
	if pkts[0] == nil {
		return 1, nil
	}
	k, udp := 1, false
	if w.tcp {
		k = offload.TCPRun(pkts)
	}
	if k == 1 && w.udp {
		k = offload.UDPRun(pkts)
		udp = k > 1
	}
	if w.uw != nil {
		if k == 1 {
			return 1, w.queue(pkts[0])
		}
		if err := w.flush(); err != nil { // keep the order of the writes
			return 0, err
		}
	}
	var err error
	switch {
	case k > 1:
		if w.super == nil {
			w.super = make([]byte, offload.MaxCoalesced)
		}
		var n int
		if udp {
			n = offload.CoalesceUDP(pkts[:k], w.hdr[:], w.super)
		} else {
			n = offload.CoalesceTCP(pkts[:k], w.hdr[:], w.super)
		}
		_, err = unix.Writev(fd, [][]byte{w.hdr[:], w.super[:n]})
		if err == unix.EINVAL {
			// Some kernels refuse coalesced writes: go on without.
			logWarn("wintun: the kernel refused a coalesced write; coalescing off for this session",
				"adapter", w.s.adapter.name, "udp", udp)
			if udp {
				w.udp = false
			} else {
				w.tcp = false
			}
			return 0, unix.EINTR // retry the same packets one by one
		}
	case w.s.gso || !w.s.vnetHdr:
		_, err = unix.Write(fd, pkts[0])
	default:
		_, err = unix.Writev(fd, [][]byte{zeroHeader[:], pkts[0]})
	}
	if err == unix.EINTR || err == unix.EAGAIN || err != nil && gone(err) {
		return 0, err
	}
	if err != nil {
		w.st.txErrorsKern.Add(uint64(k))
		return k, nil
	}
	if k > 1 {
		w.st.txSuperPackets.Add(1)
	}
	for _, p := range pkts[:k] {
		w.sent(p)
	}
	return k, nil
}

// sendLoop writes the packets the application commits to the kernel. When the ring is
// empty it sets Alertable, re-reads Tail, and only then sleeps, as Wintun's driver does.
func (s *Session) sendLoop() {
	defer close(s.writerDone)
	r := s.txr
	w := writer{s: s, r: r, st: &s.adapter.stats, tcp: s.tcpGRO, udp: s.udpGRO, uw: s.uw}
	if s.uw != nil {
		defer s.uw.ring.Close()
	}
	var head uint32
	for {
		tail := atomic.LoadUint32(r.tail())
		if head == tail {
			atomic.StoreInt32(r.alertable(), 1)
			if atomic.LoadUint32(r.tail()) == head {
				select {
				case <-s.txWake:
				case <-s.done:
					return
				}
			}
			atomic.StoreInt32(r.alertable(), 0)
			continue
		}
		var werr error
		err := s.conn.Write(func(fd uintptr) bool {
			for head != tail {
				if werr = w.gather(head, tail); werr != nil && len(w.pkts) == 0 {
					return true
				}
				for i := 0; i < len(w.pkts); {
					k, err := w.write(int(fd), w.pkts[i:])
					switch {
					case err == unix.EINTR:
						continue
					case err == unix.EAGAIN:
						if ferr := w.flush(); ferr != nil {
							werr = ferr
							return true
						}
						return false
					case err != nil && gone(err):
						werr = err
						return true
					}
					head = w.afters[i+k-1]
					i += k
				}
				if ferr := w.flush(); ferr != nil {
					werr = ferr
					return true
				}
				atomic.StoreUint32(r.head(), head) // room for the application at once
				if werr != nil {
					return true
				}
			}
			return true
		})
		atomic.StoreUint32(r.head(), head)
		switch {
		case err != nil: // closed by shutdown, or an error from the poller: gone
			s.shutdown(ErrAdapterGone)
			return
		case werr == ErrInvalidData || werr == errRingEOF:
			s.shutdown(ErrInvalidData)
			return
		case werr != nil:
			s.shutdown(ErrAdapterGone)
			return
		}
		select {
		case <-s.done:
			return
		default:
		}
	}
}
