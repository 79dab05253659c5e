package wintun

import (
	"os"
	"sync/atomic"
	"time"

	"go.wintun.dev/wintun/internal/offload"
	"golang.org/x/sys/unix"
)

// The pump is a session's driver side between its rings and its engine. The receiver
// places what the engine reads into the receive ring, splitting super-packets for a
// plain session; the writer turns what the application commits to the send ring into
// writes for the engine, coalescing runs of segments into super-packets.

// engine is the kernel-facing half of a session: a reader and a sender that move
// bytes between the session's tun queue and the pump, a packet or super-packet per
// read or write, and know nothing of rings or of what the packets hold.
type engine struct {
	reader
	sender
}

type reader interface {
	// receive reads from the queue, handing what it reads to rc, until stop is
	// called or the queue fails; the error says why it returned and is ignored once
	// the session is ending.
	receive(rc *receiver) error
	// stop makes receive return; the session calls it once, as it starts ending.
	stop()
	close()
}

type sender interface {
	// send makes the writes of units in order, sets each one's err, and returns how
	// many it made: all of them, unless the queue can take no more (the session is
	// ending, or the device is gone), which the error then says.
	send(units []sendUnit) (int, error)
	close()
}

// close releases the engine once receive and send have returned for good.
func (e engine) close() {
	e.reader.close()
	e.sender.close()
}

// newEngine returns the engine for the session's tun queue. By default it reads
// through Go's poller, which keeps no thread waiting, and writes with io_uring, a
// plan's writes per system call; WithIOUring(true) or WINTUN_ENGINE=uring reads with
// io_uring too, and WithIOUring(false) or WINTUN_ENGINE=poll uses no io_uring. Where
// io_uring is not allowed (seccomp, the io_uring_disabled sysctl, old kernels) the
// session uses the poll engine and logs why: as a warning if it asked for io_uring.
func newEngine(s *Session, cfg *sessionConfig) engine {
	poll := engine{&pollReader{conn: s.conn}, &pollSender{conn: s.conn}}
	mode := engineMode(cfg)
	if mode == enginePoll {
		return poll
	}
	us, err := newUringSender(s.conn)
	if err != nil {
		log := logWarn
		if mode == engineDefault {
			log = logInfo
		}
		log("wintun: io_uring not available; using the poll engine", "adapter", s.adapter.name, "err", err)
		return poll
	}
	e := engine{poll.reader, us}
	switch {
	case mode != engineUring:
	case !s.vnetHdr: // the io_uring reader reads every packet with its virtio_net_hdr
		logWarn("wintun: the io_uring reader needs a queue with IFF_VNET_HDR; reading through the poller", "adapter", s.adapter.name)
	default:
		ur, err := newUringReader(s.conn, s.adapter.name)
		if err != nil {
			logWarn("wintun: io_uring reads not available; reading through the poller", "adapter", s.adapter.name, "err", err)
			break
		}
		e.reader = ur
	}
	return e
}

// The engines a session may ask for.
const (
	engineDefault = iota // poll reads, io_uring writes
	enginePoll
	engineUring
)

// engineMode says which engine a session asks for: WithIOUring, or else the
// environment.
func engineMode(cfg *sessionConfig) int {
	switch {
	case cfg.uring != nil && *cfg.uring:
		return engineUring
	case cfg.uring != nil:
		return enginePoll
	}
	switch os.Getenv("WINTUN_ENGINE") {
	case "uring":
		return engineUring
	case "poll":
		return enginePoll
	}
	return engineDefault
}

// receiveBundle is how many packets the poll engine reads from the kernel before the
// receiver publishes them to the application.
const receiveBundle = 32

// receiveLoop runs the engine's reader into the receive ring until the session ends,
// then marks both rings' end of life.
func (s *Session) receiveLoop() {
	rc := receiver{s: s, r: s.rx.r, st: &s.adapter.stats, readHead: readHeadMin}
	err := s.eng.receive(&rc)
	rc.publish()
	cause := ErrSessionEnded
	if err != nil && !s.ended.Load() {
		cause = ErrAdapterGone
	}
	s.shutdown(cause)
	<-s.writerDone
	s.eng.close()
	// End of life, as Wintun's driver marks it: indices at or above the capacity.
	atomic.StoreUint32(rc.r.tail(), ringEOF)
	atomic.StoreUint32(s.txr.head(), ringEOF)
	close(s.readEvent)
	close(s.finished)
}

// receiver is the producer side of the receive ring. A packet that does not fit is
// dropped and counted: the kernel is never kept waiting.
type receiver struct {
	s        *Session
	r        *ring
	st       *stats
	tail     uint32 // next free byte, published as Tail after each bundle
	n        int    // packets written since the last publication
	hdr      [GSOHeaderLen]byte
	iov      [3][]byte
	inRing   int    // how many bytes of the current read go into the ring's free room
	readHead int    // how many a read may put there in a plain session: readHeadMin or more
	super    []byte // the rest of a read, or a super-packet being split
}

// unpublished reports how many packets are in the ring but not yet visible.
func (rc *receiver) unpublished() int { return rc.n }

// publish makes the packets written since the last publication visible and signals
// ReadWaitEvent; it reports whether it put a token into the event.
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

// splitHeader reports whether the queue's reads start with a virtio_net_hdr that the
// receiver takes off: a plain session on a queue with IFF_VNET_HDR.
func (rc *receiver) splitHeader() bool { return rc.s.vnetHdr && !rc.s.gso }

// readHeadMin is how much of a read goes straight into the receive ring, at first, in
// a plain session on a queue with virtio_net_hdr (the common case): enough for an
// ordinary packet at the usual MTUs. The rest of a longer packet goes to rc.super, from
// where a super-packet is split into the ring (its head copied over first) and
// anything else is copied in. That saves copying whole super-packets out of the ring
// before they are split, at the price of copying the head. An ordinary packet longer
// than the head (a jumbo MTU) makes the head that long from then on, so that such
// packets too are read in place.
const readHeadMin = 2048

// readBuffers returns where the next read goes: as much as the queue's format allows
// straight into the ring (the slack after the wrap point makes free room contiguous),
// the rest into rc.super. The buffers are one byte longer than a record can be, so
// that a packet too long for one is seen, not truncated.
func (rc *receiver) readBuffers() [][]byte {
	if rc.super == nil {
		rc.super = make([]byte, PacketSizeMax+1)
	}
	room := rc.r.mem[ringHeaderSize+rc.tail+recordHeader:]
	free := rc.free()
	iov := rc.iov[:0]
	if rc.splitHeader() {
		iov = append(iov, rc.hdr[:])
		rc.inRing = 0
		if free >= alignRecord(uint32(rc.readHead)) {
			rc.inRing = rc.readHead
			iov = append(iov, room[:rc.readHead])
		}
		return append(iov, rc.super[rc.inRing:])
	}
	if free >= alignRecord(PacketSizeMax) {
		rc.inRing = PacketSizeMax + 1
		return append(iov, room[:rc.inRing])
	}
	rc.inRing = 0
	return append(iov, rc.super)
}

// readDone places the n bytes that a read into readBuffers got.
func (rc *receiver) readDone(n int) {
	var h offload.Header // a WithGSO session keeps the header in the record
	if rc.splitHeader() {
		n -= GSOHeaderLen
		h = offload.ParseHeader(rc.hdr[:])
	}
	switch {
	case n <= 0:
		rc.st.rxErrors.Add(1)
	case n <= rc.inRing:
		rc.place(rc.r.mem[ringHeaderSize+rc.tail+recordHeader:][:n], h, true)
	default:
		copy(rc.super, rc.r.mem[ringHeaderSize+rc.tail+recordHeader:][:rc.inRing])
		rc.place(rc.super[:n], h, false)
		if h.GSOType == offload.GSONone && rc.inRing > 0 {
			rc.readHead = max(rc.readHead, min(n, PacketSizeMax+1))
		}
	}
}

// readFailed counts a read that failed for a reason other than the device's end.
func (rc *receiver) readFailed(err error) {
	rc.st.rxErrors.Add(1)
	logWarn("wintun: read from the kernel", "adapter", rc.s.adapter.name, "err", err)
}

// deliver puts a packet read with its virtio_net_hdr into the receive ring, split if
// it is a super-packet and the session is plain.
func (rc *receiver) deliver(b []byte) {
	if len(b) <= GSOHeaderLen {
		rc.st.rxErrors.Add(1)
		return
	}
	if rc.s.gso {
		rc.place(b, offload.Header{}, false)
	} else {
		rc.place(b[GSOHeaderLen:], offload.ParseHeader(b), false)
	}
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
			rc.super = make([]byte, PacketSizeMax+1)
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

// sendLoop hands the packets the application commits to the engine. When the ring is
// empty it sets Alertable, re-reads Tail, and only then sleeps, as Wintun's driver
// does.
func (s *Session) sendLoop() {
	defer close(s.writerDone)
	r := s.txr
	w := writer{s: s, r: r, st: &s.adapter.stats, tcp: s.tcpGRO, udp: s.udpGRO}
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
		for head != tail {
			gerr := w.prepare(head, tail)
			if len(w.units) == 0 {
				s.shutdown(ErrInvalidData) // a corrupt ring
				return
			}
			n, err := s.eng.send(w.units)
			var all bool
			head, all = w.finish(head, n)
			atomic.StoreUint32(r.head(), head) // room for the application at once
			switch {
			case err != nil: // ending, or gone
				s.shutdown(ErrAdapterGone)
				return
			case gerr != nil && all:
				s.shutdown(ErrInvalidData)
				return
			}
		}
		select {
		case <-s.done:
			return
		default:
		}
	}
}

// sendUnit is one write to the kernel.
type sendUnit struct {
	iov   [][]byte // what to write, the virtio_net_hdr first if the queue has one; nil: nothing
	pkts  [][]byte // the ring's packets it carries
	after uint32   // the ring offset after them
	gso   byte     // the coalesced super-packet's protocol, or 0
	err   error    // the write's result
}

// writer is the consumer side of the send ring.
type writer struct {
	s        *Session
	r        *ring
	st       *stats
	tcp, udp bool // coalesce TCP segments, UDP datagrams into super-packets
	// tcpProven and udpProven are set once the kernel took a coalesced write of the
	// kind: until then each is a probe, which the kernel may refuse.
	tcpProven, udpProven bool
	pkts                 [][]byte // the packets of one gathering, nil for a discarded one
	afters               []uint32 // the ring offset after each of them
	units                []sendUnit
	iovs                 [][]byte // the units' iov, in one array
	// hdrs holds the virtio_net_hdr and headers of each unit's super-packet.
	hdrs [writeBundle][GSOHeaderLen + offload.MaxCoalescedHeaders]byte
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
			// Nothing to write: publish the progress through an empty unit.
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

// prepare gathers the packets from head on and plans their writes into w.units. A
// coalesced write that is a probe ends the plan (see finish).
func (w *writer) prepare(head, tail uint32) error {
	err := w.gather(head, tail)
	w.units, w.iovs = w.units[:0], w.iovs[:0]
	for i := 0; i < len(w.pkts); {
		k := w.plan(w.pkts[i:])
		u := &w.units[len(w.units)-1]
		u.pkts, u.after = w.pkts[i:i+k], w.afters[i+k-1]
		i += k
		if w.probe(u.gso) {
			break
		}
	}
	return err
}

// plan adds the unit that writes the first of pkts, or a super-packet coalesced from
// the first ones, and returns how many packets it takes.
func (w *writer) plan(pkts [][]byte) int {
	p := pkts[0]
	k, gso := 1, byte(0)
	if p != nil && w.tcp {
		if k = offload.TCPRun(pkts); k > 1 {
			gso = unix.IPPROTO_TCP
		}
	}
	if p != nil && k == 1 && w.udp {
		if k = offload.UDPRun(pkts); k > 1 {
			gso = unix.IPPROTO_UDP
		}
	}
	var iov [][]byte
	switch {
	case p == nil || gso != 0:
	case w.s.gso || !w.s.vnetHdr:
		iov = w.appendIov(p)
	default:
		iov = w.appendIov(zeroHeader[:], p)
	}
	if gso != 0 {
		// The super-packet goes to the kernel from where its payloads lie in the
		// ring: only its virtio_net_hdr and headers are written anew.
		h := &w.hdrs[len(w.units)]
		vnet, hdr := h[:GSOHeaderLen], h[GSOHeaderLen:]
		var hl int
		if gso == unix.IPPROTO_UDP {
			hl = offload.CoalesceUDPHeaders(pkts[:k], vnet, hdr)
		} else {
			hl = offload.CoalesceTCPHeaders(pkts[:k], vnet, hdr)
		}
		start := len(w.iovs)
		w.iovs = append(w.iovs, vnet, hdr[:hl])
		for _, q := range pkts[:k] {
			w.iovs = append(w.iovs, q[hl:])
		}
		iov = w.iovs[start:len(w.iovs):len(w.iovs)]
	}
	w.units = append(w.units, sendUnit{iov: iov, gso: gso})
	return k
}

// probe reports whether a coalesced write of protocol gso would be a probe: the kernel
// has not taken one of its kind yet.
func (w *writer) probe(gso byte) bool {
	return gso == unix.IPPROTO_TCP && !w.tcpProven || gso == unix.IPPROTO_UDP && !w.udpProven
}

// appendIov adds bufs to w.iovs and returns them as a unit's iov.
func (w *writer) appendIov(bufs ...[]byte) [][]byte {
	start := len(w.iovs)
	w.iovs = append(w.iovs, bufs...)
	return w.iovs[start:len(w.iovs):len(w.iovs)]
}

// finish accounts for the first n units, made by the engine, and returns the ring
// offset after the packets they took and whether they were all of the plan. A
// coalesced write that the kernel refuses as a probe switches that kind of coalescing
// off for the session; its packets are written again, one by one.
func (w *writer) finish(head uint32, n int) (uint32, bool) {
	for i := range w.units[:n] {
		u := &w.units[i]
		switch {
		case u.err == unix.EINVAL && w.probe(u.gso):
			logWarn("wintun: the kernel refused a coalesced write; coalescing off for this session",
				"adapter", w.s.adapter.name, "udp", u.gso == unix.IPPROTO_UDP)
			if u.gso == unix.IPPROTO_UDP {
				w.udp = false
			} else {
				w.tcp = false
			}
			return head, false
		case u.err != nil:
			w.st.txErrorsKern.Add(uint64(len(u.pkts)))
		case u.iov != nil:
			switch u.gso {
			case unix.IPPROTO_TCP:
				w.tcpProven = true
			case unix.IPPROTO_UDP:
				w.udpProven = true
			}
			if u.gso != 0 {
				w.st.txSuperPackets.Add(1)
			}
			for _, p := range u.pkts {
				w.sent(p)
			}
		}
		head = u.after
	}
	return head, n == len(w.units)
}

// sent counts a packet the kernel took.
func (w *writer) sent(p []byte) {
	w.st.txPackets.Add(1)
	w.st.txBytes.Add(uint64(len(p)))
	if w.s.capture != nil {
		w.s.capture.CapturePacket(Sent, time.Now(), p)
	}
}
