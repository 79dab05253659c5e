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
	"golang.org/x/sys/unix"
)

// Session is a pair of rings attached to one queue of an adapter. Two goroutines play
// the driver's part: one reads bundles of packets from the kernel into the receive
// ring, the other writes what the application commits to the send ring to the kernel.
//
// All methods are safe for concurrent use, and none makes a system call except End.
type Session struct {
	adapter *Adapter
	capture Capture // nil unless WithCapture
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

// carrierUsers counts this process's sessions per adapter: the carrier is on while
// there is at least one.
var carrierUsers = struct {
	sync.Mutex
	n map[GUID]int
}{n: map[GUID]int{}}

// StartSession attaches a new queue to the adapter with a pair of rings of capacity
// bytes each: a power of two from RingCapacityMin to RingCapacityMax. Several sessions
// may run on one adapter; the kernel spreads flows over their queues. The tun queue is
// opened from the calling goroutine, in its thread's network namespace, where the
// adapter must be.
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
	if _, guid, _, err := lookup(a.name); err != nil || guid != a.guid {
		return nil, fmt.Errorf("wintun: start session on %q: not in this network namespace any more: %w", a.name, ErrAdapterGone)
	}
	fd, err := openQueue(a.name, tunFlags, true)
	if err != nil {
		return nil, err
	}
	if _, guid, _, err := lookup(a.name); err != nil || guid != a.guid {
		unix.Close(fd)
		return nil, fmt.Errorf("wintun: start session on %q: %w", a.name, ErrAdapterGone)
	}
	carrierUsers.Lock()
	err = unix.IoctlSetPointerInt(fd, unix.TUNSETCARRIER, 1)
	if err == nil {
		carrierUsers.n[a.guid]++
	}
	carrierUsers.Unlock()
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("wintun: start session on %q: carrier on: %w", a.name, err)
	}
	s := &Session{
		adapter:    a,
		capture:    cfg.capture,
		file:       os.NewFile(uintptr(fd), "/dev/net/tun"),
		rx:         ringReader{r: newRing(capacity)},
		txr:        newRing(capacity),
		readEvent:  make(chan struct{}, 1),
		txWake:     make(chan struct{}, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		finished:   make(chan struct{}),
	}
	s.tx.r = s.txr
	if s.conn, err = s.file.SyscallConn(); err != nil {
		s.file.Close()
		return nil, err
	}
	a.sessions[s] = struct{}{}
	go s.receiveLoop()
	go s.sendLoop()
	waitOperUp(a.name)
	return s, nil
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
		carrierUsers.Lock()
		carrierUsers.n[s.adapter.guid]--
		if carrierUsers.n[s.adapter.guid] <= 0 {
			delete(carrierUsers.n, s.adapter.guid)
			s.conn.Control(func(fd uintptr) {
				unix.IoctlSetPointerInt(int(fd), unix.TUNSETCARRIER, 0)
			})
		}
		carrierUsers.Unlock()
		s.file.Close() // wakes the reader blocked in the poller
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
	if err == errRingEOF {
		if err = s.err(); err == nil {
			err = ErrAdapterGone
		}
	}
	return p, err
}

// ReleaseReceivePacket gives back the ring space of a packet from ReceivePacket.
// Packets may be released in any order; the space returns to the kernel side as soon
// as every packet received before it is released too. A slice that is not a held
// packet of this session is ignored (and logged).
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
	if err == errRingEOF {
		if err = s.err(); err == nil {
			err = ErrAdapterGone
		}
	}
	return p, err
}

// SendPacket commits a packet from AllocateSendPacket. Packets may be committed in any
// order. A slice that is not an uncommitted packet of this session is ignored (and
// logged). Packets that are not IPv4 or IPv6 are dropped and counted in
// Stats.SendDiscardsInvalid.
func (s *Session) SendPacket(packet []byte) {
	if !s.tx.commit(packet) {
		if !s.ended.Load() {
			logWarn("wintun: SendPacket: not a packet allocated from this session", "adapter", s.adapter.name)
		}
		return
	}
	// Tail was published with a sequentially consistent store; if the writer said it
	// would sleep before that, it re-reads Tail or gets this token (no missed wake-up).
	if atomic.LoadInt32(s.txr.alertable()) != 0 {
		select {
		case s.txWake <- struct{}{}:
		default:
		}
	}
}

// gone reports whether a read or write error means that the queue is no longer
// attached to a device: the kernel answers EBADFD once the device is deleted. (EIO
// only means that the device is down, e.g. just after a move to another namespace.)
func gone(err error) bool {
	return errors.Is(err, unix.EBADFD)
}

// receiveLoop moves packets from the kernel into the receive ring, a bundle at a time.
// A packet that does not fit is dropped and counted: the kernel is never kept waiting.
func (s *Session) receiveLoop() {
	r := s.rx.r
	st := &s.adapter.stats
	var tail uint32
	var scratch []byte
	cause := ErrSessionEnded
	for {
		n := 0
		var rerr error
		err := s.conn.Read(func(fd uintptr) bool {
			for n < receiveBundle {
				free := r.free(atomic.LoadUint32(r.head()), tail)
				var buf []byte
				direct := free >= alignRecord(PacketSizeMax)
				if direct {
					// Read straight into the ring; the slack after the wrap point
					// makes this room contiguous.
					buf = r.mem[ringHeaderSize+tail+recordHeader:][:PacketSizeMax]
				} else {
					if scratch == nil {
						scratch = make([]byte, PacketSizeMax)
					}
					buf = scratch
				}
				m, err := unix.Read(int(fd), buf)
				switch {
				case err == unix.EINTR:
					continue
				case err == unix.EAGAIN:
					return n > 0
				case err != nil:
					rerr = err
					return true
				case m == 0:
					st.rxErrors.Add(1)
					continue
				}
				if !direct {
					if alignRecord(uint32(m)) > free {
						st.rxDropsFull.Add(1)
						continue
					}
					copy(r.mem[ringHeaderSize+tail+recordHeader:], buf[:m])
				}
				*r.size(tail) = uint32(m)
				if s.capture != nil {
					s.capture.CapturePacket(Received, time.Now(), r.packet(tail, uint32(m)))
				}
				tail = r.wrap(tail + alignRecord(uint32(m)))
				st.rxPackets.Add(1)
				st.rxBytes.Add(uint64(m))
				n++
			}
			return true
		})
		if n > 0 {
			atomic.StoreUint32(r.tail(), tail)
			select {
			case s.readEvent <- struct{}{}:
			default:
			}
		}
		if err != nil { // the file was closed by shutdown
			break
		}
		if rerr != nil {
			if gone(rerr) {
				cause = ErrAdapterGone
				break
			}
			st.rxErrors.Add(1)
			logWarn("wintun: read from the kernel", "adapter", s.adapter.name, "err", rerr)
		}
	}
	s.shutdown(cause)
	<-s.writerDone
	// End of life, as Wintun's driver marks it: indices at or above the capacity.
	atomic.StoreUint32(r.tail(), ringEOF)
	atomic.StoreUint32(s.txr.head(), ringEOF)
	close(s.readEvent)
	close(s.finished)
}

// sendLoop writes the packets the application commits to the kernel. When the ring is
// empty it sets Alertable, re-reads Tail, and only then sleeps, as Wintun's driver does.
func (s *Session) sendLoop() {
	defer close(s.writerDone)
	r := s.txr
	st := &s.adapter.stats
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
				size, after, err := r.next(head, tail)
				if err != nil {
					werr = err
					return true
				}
				p := r.packet(head, size)
				if !validPacket(p) {
					st.txDiscardsInvalid.Add(1)
					head = after
					continue
				}
				_, err = unix.Write(int(fd), p)
				switch {
				case err == unix.EINTR:
					continue
				case err == unix.EAGAIN:
					return false
				case err != nil && gone(err):
					werr = err
					return true
				case err != nil:
					st.txErrorsKern.Add(1)
				default:
					st.txPackets.Add(1)
					st.txBytes.Add(uint64(size))
					if s.capture != nil {
						s.capture.CapturePacket(Sent, time.Now(), p)
					}
				}
				head = after
			}
			return true
		})
		atomic.StoreUint32(r.head(), head)
		switch {
		case err != nil:
			return // closed by shutdown
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
