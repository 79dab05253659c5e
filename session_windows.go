package wintun

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/windows"
	dll "golang.zx2c4.com/wintun"
)

// Session is a pair of rings that wintun.dll shares with the Wintun driver, wrapped
// with the checks that the official binding lacks (see guardedSession): End is
// idempotent, no call runs on a freed session, and only packets this session handed
// out are given back to the DLL.
//
// All methods are safe for concurrent use. Unlike on Linux, the rings are the DLL's
// memory: slices from ReceivePacket and AllocateSendPacket must not be used after End,
// nor kept anywhere (a reused ReceivePackets buffer included): the DLL frees that
// memory, and a stale pointer into it that the garbage collector finds once Go maps
// its heap there can crash the program.
// WithCapture's hook runs in the goroutine calling ReceivePacket or SendPacket, and
// must not call End.
type Session struct {
	adapter *Adapter
	g       *guardedSession

	readEvent  chan struct{} // ReadWaitEvent's channel
	quit       windows.Handle
	waiterDone chan struct{}
	endOnce    sync.Once
}

// StartSession starts a session on the adapter with a pair of rings of capacity
// bytes each: a power of two from RingCapacityMin to RingCapacityMax. Wintun allows one
// session per adapter at a time: a second one gives an error satisfying
// errors.Is(err, fs.ErrExist).
func (a *Adapter) StartSession(capacity uint32, opts ...SessionOption) (*Session, error) {
	if err := checkCapacity(capacity); err != nil {
		return nil, err
	}
	var cfg sessionConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.gso {
		return nil, fmt.Errorf("wintun: WithGSO: %w on Windows (Wintun carries ordinary packets only)", errors.ErrUnsupported)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, fmt.Errorf("wintun: start session on %q: %w", a.name, ErrSessionEnded)
	}
	quit, err := windows.CreateEvent(nil, 1, 0, nil) // manual reset: stays set
	if err != nil {
		return nil, fmt.Errorf("wintun: start session on %q: quit event: %w", a.name, err)
	}
	var h dll.Session
	var readEvent windows.Handle
	err = guard("start session", func() (err error) {
		if h, err = a.handle.StartSession(capacity); err == nil {
			readEvent = h.ReadWaitEvent()
		}
		return err
	})
	if err != nil {
		windows.CloseHandle(quit)
		return nil, mapWinError(fmt.Sprintf("start session on %q", a.name), err)
	}
	s := &Session{
		adapter:    a,
		readEvent:  make(chan struct{}, 1),
		quit:       quit,
		waiterDone: make(chan struct{}),
	}
	s.g = newGuardedSession(h, a.name, &a.stats, cfg.capture, func() { windows.SetEvent(quit) })
	a.sessions[s] = struct{}{}
	go s.waitLoop(readEvent)
	return s, nil
}

// waitLoop turns the DLL's read-wait event into ReadWaitEvent's channel. The event is
// auto-reset and the driver sets it whenever it adds packets, so a packet that arrives
// after ReceivePacket reported ErrNoMoreItems always sets it after that report, and
// this loop then leaves a token in the channel: no wake-up is missed. It closes the
// channel once quit is set, by End or when the adapter is gone. A failed wait ends the
// session, so that callers get ErrSessionEnded instead of waiting on a closed channel
// and finding the ring empty forever. It keeps an OS thread blocked for the session's
// life.
func (s *Session) waitLoop(readEvent windows.Handle) {
	defer close(s.waiterDone)
	defer close(s.readEvent)
	handles := []windows.Handle{readEvent, s.quit}
	pumpReadEvent(func() (bool, error) {
		i, err := windows.WaitForMultipleObjects(handles, false, windows.INFINITE)
		if err != nil {
			return false, err
		}
		return i == windows.WAIT_OBJECT_0, nil
	}, s.readEvent, func(err error) {
		logWarn("wintun: waiting for packets failed; ending the session", "adapter", s.adapter.name, "err", err)
		go s.End() // End waits for this loop to return
	})
}

// End ends the session and frees its rings: it closes ReadWaitEvent's channel and
// makes every call return ErrSessionEnded. End is idempotent (unlike the binding's)
// and returns once the session is gone.
func (s *Session) End() {
	s.endOnce.Do(func() {
		s.g.end(func() {
			// Nobody may wait on the read event, which the DLL closes with the session.
			windows.SetEvent(s.quit)
			<-s.waiterDone
		})
		windows.CloseHandle(s.quit)
		s.adapter.mu.Lock()
		delete(s.adapter.sessions, s)
		s.adapter.mu.Unlock()
	})
}

// ReadWaitEvent returns a channel that receives after packets arrive; wait on it when
// ReceivePacket reports ErrNoMoreItems. It is closed when the session ends, or once a
// call has found the adapter gone or the ring corrupt.
func (s *Session) ReadWaitEvent() <-chan struct{} { return s.readEvent }

// ReceivePacket returns the next packet the operating system sent through the adapter,
// as a slice into the ring: its space stays taken until ReleaseReceivePacket. It
// returns ErrNoMoreItems when the ring is empty, ErrAdapterGone (an io.EOF error) when
// the adapter is going away, ErrInvalidData if the ring is corrupt, and
// ErrSessionEnded after End.
func (s *Session) ReceivePacket() ([]byte, error) { return s.g.receive() }

// ReleaseReceivePacket gives back the ring space of a packet from ReceivePacket.
// Packets may be released in any order. A slice that is not a held packet of this
// session (empty, re-sliced from the front, released twice, from another session) is
// ignored and logged.
func (s *Session) ReleaseReceivePacket(packet []byte) { s.g.release(packet) }

// AllocateSendPacket reserves ring space for a packet of exactly size bytes (1 to
// PacketSizeMax) and returns it, to be filled in and handed to SendPacket. The driver
// receives packets in the order they were allocated. A full ring gives
// ErrBufferOverflow at once; the caller drops the packet or tries again later.
func (s *Session) AllocateSendPacket(size int) ([]byte, error) {
	if err := checkSize(size); err != nil {
		return nil, err
	}
	return s.g.allocate(size)
}

// SendPacket commits a packet from AllocateSendPacket (all of it, even if the slice
// given was shortened). Packets may be committed in any order. A slice that is not an
// uncommitted packet of this session is ignored (and logged). Packets that are not
// IPv4 or IPv6 are counted in Stats.SendDiscardsInvalid; the driver drops them.
func (s *Session) SendPacket(packet []byte) { s.g.send(packet) }

// ReceivePackets is ReceivePacket for a bundle: it stores up to len(packets) received
// packets, slices into the ring, in packets and returns how many. It returns
// ErrNoMoreItems when there is none, and the errors of ReceivePacket. wintun.dll has
// no batch calls: on Windows this is a loop over ReceivePacket.
func (s *Session) ReceivePackets(packets [][]byte) (int, error) { return s.g.receiveBatch(packets) }

// ReleaseReceivePackets releases packets from ReceivePacket or ReceivePackets, as
// ReleaseReceivePacket does for each.
func (s *Session) ReleaseReceivePackets(packets [][]byte) { s.g.releaseBatch(packets) }

// AllocateSendPackets allocates one packet per entry of sizes, in order, into packets
// (which must be at least as long), and returns how many it allocated: fewer than
// len(sizes) with ErrBufferOverflow when the ring is full. Sizes are checked as in
// AllocateSendPacket before anything is allocated. On Windows this is a loop over
// AllocateSendPacket.
func (s *Session) AllocateSendPackets(sizes []int, packets [][]byte) (int, error) {
	if err := checkSizes(sizes, packets); err != nil {
		return 0, err
	}
	return s.g.allocateBatch(sizes, packets)
}

// SendPackets commits packets from AllocateSendPacket or AllocateSendPackets, as
// SendPacket does for each. On Windows this is a loop over SendPacket; the driver
// wakes on its own.
func (s *Session) SendPackets(packets [][]byte) { s.g.sendBatch(packets) }
