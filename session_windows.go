package wintun

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	dll "golang.zx2c4.com/wintun"
)

// Session is a pair of rings that wintun.dll shares with the Wintun driver.
//
// The binding's session is a bare handle: ending it twice, or using it after End,
// touches freed memory. Here every call holds a read lock and checks that the session
// has not ended, and End takes the write lock before it lets the DLL free the rings,
// so no call can run on a freed session. The packets handed out are tracked, so that
// a slice that is not a packet of this session is ignored instead of corrupting a
// ring.
//
// All methods are safe for concurrent use. Unlike on Linux, the rings are the DLL's
// memory: slices from ReceivePacket and AllocateSendPacket must not be used after End.
type Session struct {
	adapter *Adapter
	capture Capture // nil unless WithCapture

	mu    sync.RWMutex // held for reading by every DLL call, for writing by End
	h     dll.Session
	ended atomic.Bool

	readEvent  chan struct{} // ReadWaitEvent's channel
	quit       windows.Handle
	waiterDone chan struct{}
	endOnce    sync.Once

	heldMu    sync.Mutex
	received  map[*byte]struct{} // packets received and not yet released
	allocated map[*byte][]byte   // packets allocated and not yet sent, at full size
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
	err = guard("start session", func() (err error) {
		h, err = a.handle.StartSession(capacity)
		return err
	})
	if err != nil {
		windows.CloseHandle(quit)
		return nil, mapWinError(fmt.Sprintf("start session on %q", a.name), err)
	}
	s := &Session{
		adapter:    a,
		capture:    cfg.capture,
		h:          h,
		readEvent:  make(chan struct{}, 1),
		quit:       quit,
		waiterDone: make(chan struct{}),
		received:   map[*byte]struct{}{},
		allocated:  map[*byte][]byte{},
	}
	a.sessions[s] = struct{}{}
	go s.waitLoop(h.ReadWaitEvent())
	return s, nil
}

// waitLoop turns the DLL's read-wait event into ReadWaitEvent's channel. The event is
// auto-reset and the driver sets it whenever it adds packets, so a packet that arrives
// after ReceivePacket reported ErrNoMoreItems always sets it after that report, and
// this loop then leaves a token in the channel: no wake-up is missed. It closes the
// channel once quit is set, by End or when the adapter is gone. It keeps an OS thread
// blocked for the session's life.
func (s *Session) waitLoop(readEvent windows.Handle) {
	defer close(s.waiterDone)
	defer close(s.readEvent)
	handles := []windows.Handle{readEvent, s.quit}
	for {
		i, err := windows.WaitForMultipleObjects(handles, false, windows.INFINITE)
		if err != nil {
			logWarn("wintun: waiting for packets failed; ReadWaitEvent closed", "adapter", s.adapter.name, "err", err)
			return
		}
		if i != windows.WAIT_OBJECT_0 {
			return
		}
		select {
		case s.readEvent <- struct{}{}:
		default: // a token is already waiting
		}
	}
}

// End ends the session and frees its rings: it closes ReadWaitEvent's channel and
// makes every call return ErrSessionEnded. End is idempotent (unlike the binding's)
// and returns once the session is gone.
func (s *Session) End() {
	s.endOnce.Do(func() {
		s.ended.Store(true) // calls that start from now on return at once
		windows.SetEvent(s.quit)
		<-s.waiterDone // nobody waits on the read event any more
		s.mu.Lock()    // calls in flight are done
		guard("end session", func() error { s.h.End(); return nil })
		s.mu.Unlock()
		windows.CloseHandle(s.quit)
		s.heldMu.Lock()
		clear(s.received)
		clear(s.allocated)
		s.heldMu.Unlock()
		s.adapter.mu.Lock()
		delete(s.adapter.sessions, s)
		s.adapter.mu.Unlock()
	})
}

// ReadWaitEvent returns a channel that receives after packets arrive; wait on it when
// ReceivePacket reports ErrNoMoreItems. It is closed when the session ends, or once a
// call has found the adapter gone or the ring corrupt.
func (s *Session) ReadWaitEvent() <-chan struct{} { return s.readEvent }

// fatal records that the rings are unusable (adapter gone, ring corrupt): waiters
// wake up to a closed channel and find the error on their next call.
func (s *Session) fatal(err error) error {
	if err == ErrAdapterGone || err == ErrInvalidData {
		windows.SetEvent(s.quit)
	}
	return err
}

// ReceivePacket returns the next packet the operating system sent through the adapter,
// as a slice into the ring: its space stays taken until ReleaseReceivePacket. It
// returns ErrNoMoreItems when the ring is empty, ErrAdapterGone (an io.EOF error) when
// the adapter is going away, ErrInvalidData if the ring is corrupt, and
// ErrSessionEnded after End.
func (s *Session) ReceivePacket() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ended.Load() {
		return nil, ErrSessionEnded
	}
	p, err := s.h.ReceivePacket()
	if err != nil {
		return nil, s.fatal(mapWinError("receive packet", err))
	}
	s.heldMu.Lock()
	s.received[unsafe.SliceData(p)] = struct{}{}
	s.heldMu.Unlock()
	st := &s.adapter.stats
	st.rxPackets.Add(1)
	st.rxBytes.Add(uint64(len(p)))
	if s.capture != nil {
		s.capture.CapturePacket(Received, time.Now(), p)
	}
	return p, nil
}

// ReleaseReceivePacket gives back the ring space of a packet from ReceivePacket.
// Packets may be released in any order. A slice that is not a held packet of this
// session (empty, re-sliced from the front, released twice, from another session) is
// ignored and logged.
func (s *Session) ReleaseReceivePacket(packet []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ended.Load() {
		return
	}
	ptr := unsafe.SliceData(packet)
	s.heldMu.Lock()
	_, ok := s.received[ptr]
	delete(s.received, ptr)
	s.heldMu.Unlock()
	if !ok || ptr == nil {
		logWarn("wintun: ReleaseReceivePacket: not a packet held from this session", "adapter", s.adapter.name)
		return
	}
	// The DLL finds the record from the packet's first byte; a one-byte view works
	// even for a packet that was handed out empty.
	s.h.ReleaseReceivePacket(unsafe.Slice(ptr, 1))
}

// AllocateSendPacket reserves ring space for a packet of exactly size bytes (1 to
// PacketSizeMax) and returns it, to be filled in and handed to SendPacket. The driver
// receives packets in the order they were allocated. A full ring gives
// ErrBufferOverflow at once; the caller drops the packet or tries again later.
func (s *Session) AllocateSendPacket(size int) ([]byte, error) {
	if size < 1 || size > PacketSizeMax {
		return nil, fmt.Errorf("wintun: invalid packet size %d: want 1 to %d", size, PacketSizeMax)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ended.Load() {
		return nil, ErrSessionEnded
	}
	p, err := s.h.AllocateSendPacket(size)
	if err != nil {
		return nil, s.fatal(mapWinError("allocate send packet", err))
	}
	s.heldMu.Lock()
	s.allocated[unsafe.SliceData(p)] = p
	s.heldMu.Unlock()
	return p, nil
}

// SendPacket commits a packet from AllocateSendPacket (all of it, even if the slice
// given was shortened). Packets may be committed in any order. A slice that is not an
// uncommitted packet of this session is ignored (and logged). Packets that are not
// IPv4 or IPv6 are counted in Stats.SendDiscardsInvalid; the driver drops them.
func (s *Session) SendPacket(packet []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ended.Load() {
		return
	}
	ptr := unsafe.SliceData(packet)
	s.heldMu.Lock()
	full, ok := s.allocated[ptr]
	delete(s.allocated, ptr)
	s.heldMu.Unlock()
	if !ok || ptr == nil {
		logWarn("wintun: SendPacket: not a packet allocated from this session", "adapter", s.adapter.name)
		return
	}
	st := &s.adapter.stats
	if validPacket(full) {
		st.txPackets.Add(1)
		st.txBytes.Add(uint64(len(full)))
		// Before the commit: afterwards the space belongs to the driver.
		if s.capture != nil {
			s.capture.CapturePacket(Sent, time.Now(), full)
		}
	} else {
		st.txDiscardsInvalid.Add(1)
	}
	s.h.SendPacket(full)
}
