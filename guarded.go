package wintun

// The checks that the Windows side adds around the official binding's session, kept
// free of Windows-only imports so that they are tested on Linux with a fake binding.

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// ringBinding is what the Windows side uses of golang.zx2c4.com/wintun's Session: a
// bare handle whose End frees the rings, so that any later call, a second End
// included, touches freed memory, and whose release and send calls panic on an empty
// slice and corrupt a ring given a slice that is not one of its packets.
type ringBinding interface {
	ReceivePacket() ([]byte, error)
	ReleaseReceivePacket(packet []byte)
	AllocateSendPacket(size int) ([]byte, error)
	SendPacket(packet []byte)
	End()
}

// guardedSession makes a ringBinding safe: every call holds a read lock and checks
// that the session has not ended, and end takes the write lock before the binding
// frees the rings, so no call runs on a freed session. The packets handed out are
// tracked, and only those are given back to the binding.
type guardedSession struct {
	adapter string  // for log messages
	stats   *stats  // the adapter's counters
	capture Capture // nil unless WithCapture
	fatal   func()  // called when the rings become unusable (adapter gone, corrupt)

	mu      sync.RWMutex // held for reading by every binding call, for writing by end
	b       ringBinding
	ended   atomic.Bool
	endOnce sync.Once

	heldMu    sync.Mutex
	received  map[*byte][]byte // packets received and not yet released
	allocated map[*byte][]byte // packets allocated and not yet sent
}

func newGuardedSession(b ringBinding, adapter string, st *stats, capture Capture, fatal func()) *guardedSession {
	return &guardedSession{adapter: adapter, stats: st, capture: capture, fatal: fatal, b: b,
		received: map[*byte][]byte{}, allocated: map[*byte][]byte{}}
}

// end ends the session once: calls starting from now on return ErrSessionEnded,
// beforeFree runs (to stop whatever waits on the session's event), then the binding
// frees the rings once the calls in flight are done. Concurrent and later calls
// return after that.
func (g *guardedSession) end(beforeFree func()) {
	g.endOnce.Do(func() {
		g.ended.Store(true)
		beforeFree()
		g.mu.Lock()
		g.b.End()
		g.mu.Unlock()
		g.heldMu.Lock()
		clear(g.received)
		clear(g.allocated)
		g.heldMu.Unlock()
	})
}

// failed maps a binding error and reports unusable rings.
func (g *guardedSession) failed(op string, err error) error {
	err = mapRingError(op, err)
	if err == ErrAdapterGone || err == ErrInvalidData {
		g.fatal()
	}
	return err
}

func (g *guardedSession) receive() ([]byte, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.ended.Load() {
		return nil, ErrSessionEnded
	}
	p, err := g.b.ReceivePacket()
	if err != nil {
		return nil, g.failed("receive packet", err)
	}
	g.heldMu.Lock()
	g.received[unsafe.SliceData(p)] = p
	g.heldMu.Unlock()
	g.stats.rxPackets.Add(1)
	g.stats.rxBytes.Add(uint64(len(p)))
	if g.capture != nil {
		g.capture.CapturePacket(Received, time.Now(), p)
	}
	return p, nil
}

func (g *guardedSession) release(packet []byte) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if !g.ended.Load() && !g.releaseLocked(packet) {
		logWarn("wintun: ReleaseReceivePacket: not a packet held from this session", "adapter", g.adapter)
	}
}

// releaseLocked gives packet back to the binding if it is a held packet; the caller
// holds g.mu for reading and has checked that the session has not ended.
func (g *guardedSession) releaseLocked(packet []byte) bool {
	if _, ok := takeHeld(g, g.received, packet); !ok {
		return false
	}
	// The DLL finds the record from the packet's first byte; a one-byte view works
	// even for a packet that was handed out empty.
	g.b.ReleaseReceivePacket(unsafe.Slice(unsafe.SliceData(packet), 1))
	return true
}

// receiveBatch is receive for a bundle, as a loop over the binding's single calls
// (wintun.dll has no batch calls): it stops at the first error, and returns
// ErrNoMoreItems only when it received nothing.
func (g *guardedSession) receiveBatch(packets [][]byte) (int, error) {
	n := 0
	for n < len(packets) {
		p, err := g.receive()
		if err != nil {
			if n > 0 && err == ErrNoMoreItems {
				break
			}
			return n, err
		}
		packets[n] = p
		n++
	}
	return n, nil
}

// releaseBatch is release for a bundle, with one warning for all the slices that are
// not held packets of this session.
func (g *guardedSession) releaseBatch(packets [][]byte) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.ended.Load() {
		return
	}
	refused := 0
	for _, p := range packets {
		if !g.releaseLocked(p) {
			refused++
		}
	}
	if refused > 0 {
		logWarn("wintun: ReleaseReceivePackets: not packets held from this session", "adapter", g.adapter, "count", refused)
	}
}

// allocateBatch is allocate for a bundle, in order, as many as fit: fewer than
// len(sizes) with the error that stopped it (ErrBufferOverflow for a full ring).
// The caller has checked the sizes and the length of packets.
func (g *guardedSession) allocateBatch(sizes []int, packets [][]byte) (int, error) {
	for n, size := range sizes {
		p, err := g.allocate(size)
		if err != nil {
			return n, err
		}
		packets[n] = p
	}
	return len(sizes), nil
}

// sendBatch is send for a bundle, with one warning for all the slices that are not
// uncommitted packets of this session.
func (g *guardedSession) sendBatch(packets [][]byte) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.ended.Load() {
		return
	}
	refused := 0
	for _, p := range packets {
		if !g.sendLocked(p) {
			refused++
		}
	}
	if refused > 0 {
		logWarn("wintun: SendPackets: not packets allocated from this session", "adapter", g.adapter, "count", refused)
	}
}

func (g *guardedSession) allocate(size int) ([]byte, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.ended.Load() {
		return nil, ErrSessionEnded
	}
	p, err := g.b.AllocateSendPacket(size)
	if err != nil {
		return nil, g.failed("allocate send packet", err)
	}
	g.heldMu.Lock()
	g.allocated[unsafe.SliceData(p)] = p
	g.heldMu.Unlock()
	return p, nil
}

func (g *guardedSession) send(packet []byte) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if !g.ended.Load() && !g.sendLocked(packet) {
		logWarn("wintun: SendPacket: not a packet allocated from this session", "adapter", g.adapter)
	}
}

// sendLocked commits packet if it is an uncommitted packet of this session; the
// caller holds g.mu for reading and has checked that the session has not ended.
func (g *guardedSession) sendLocked(packet []byte) bool {
	full, ok := takeHeld(g, g.allocated, packet)
	if !ok {
		return false
	}
	if validPacket(full) {
		g.stats.txPackets.Add(1)
		g.stats.txBytes.Add(uint64(len(full)))
		// Before the commit: afterwards the space belongs to the driver.
		if g.capture != nil {
			g.capture.CapturePacket(Sent, time.Now(), full)
		}
	} else {
		g.stats.txDiscardsInvalid.Add(1)
	}
	g.b.SendPacket(full)
	return true
}

// takeHeld removes packet from held and returns the slice handed out, if packet is
// exactly that slice: the same start and length.
func takeHeld(g *guardedSession, held map[*byte][]byte, packet []byte) (full []byte, ok bool) {
	ptr := unsafe.SliceData(packet)
	if ptr == nil {
		return nil, false
	}
	g.heldMu.Lock()
	defer g.heldMu.Unlock()
	full, ok = held[ptr]
	if !ok || len(full) != len(packet) {
		return nil, false
	}
	delete(held, ptr)
	return full, true
}

// pumpReadEvent turns the session's read-wait event into tokens on out, never more
// than one waiting: wait blocks until the event is set (true), the session is
// stopping (false), or the wait fails. A failed wait leaves nobody to signal new
// packets, so onFail ends the session rather than let readers wait forever or spin on
// a closed channel. The caller closes out once pumpReadEvent returns.
func pumpReadEvent(wait func() (bool, error), out chan<- struct{}, onFail func(error)) {
	for {
		readable, err := wait()
		if err != nil {
			onFail(err)
			return
		}
		if !readable {
			return
		}
		select {
		case out <- struct{}{}:
		default: // a token is already waiting
		}
	}
}
