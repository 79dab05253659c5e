package wintun

import (
	"errors"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The ring, as Wintun lays it out: a header {Head, Tail uint32; Alertable int32}
// followed by the data area. Records are {Size uint32; data[Size]} padded to 4 bytes.
// Head is the offset of the first unconsumed record, Tail the first free byte; one
// 4-byte slot always stays free so that Head == Tail means empty. The data area is
// capacity+ringSlack bytes so that a record starting before the wrap point runs on
// past it and every packet is contiguous; offsets only wrap between records.
//
// Each ring has one producer and one consumer side. Head is written only by the
// consumer, Tail only by the producer, both with sequentially consistent atomics
// (sync/atomic), which also order the plain accesses to the records between them.
const (
	ringHeaderSize = 12
	ringSlack      = 0x10000
	recordHeader   = 4
	// recordFlag in a record's Size marks a received packet as released, or an
	// allocated one as not yet committed.
	recordFlag = 0x80000000
	// ringEOF in Head or Tail is the end of the ring's life; any index at or above
	// the capacity reads as end of file.
	ringEOF = 0xFFFFFFFF
)

// errRingEOF is the ring-level end of file; sessions report it as ErrSessionEnded or
// ErrAdapterGone.
var errRingEOF = errors.New("wintun: ring at end of file")

type ring struct {
	capacity uint32
	mem      []byte // header, then capacity+ringSlack bytes of data
}

// newRing allocates a ring. Its memory comes from the Go heap, so slices handed out
// to the application stay valid, whatever happens to the session.
func newRing(capacity uint32) *ring {
	n := ringHeaderSize + int(capacity) + ringSlack
	words := make([]uint64, (n+7)/8) // 8-byte alignment for the header's atomics
	return &ring{capacity: capacity, mem: unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)}
}

// heldRecords has a bit per 4-byte slot of a ring, set at the offset of each record
// handed to the application (received, or allocated) and not yet given back, so that
// only a slice that starts exactly at such a record can give it back: a sub-slice
// whose bytes happen to read like a record's size cannot.
type heldRecords []uint64

func (h *heldRecords) hold(r *ring, off uint32) {
	if *h == nil {
		*h = make(heldRecords, r.capacity/(recordHeader*64))
	}
	(*h)[off/256] |= 1 << (off / 4 % 64)
}

func (h heldRecords) isHeld(off uint32) bool { return h != nil && h[off/256]&(1<<(off/4%64)) != 0 }

func (h heldRecords) unhold(off uint32) { h[off/256] &^= 1 << (off / 4 % 64) }

func (r *ring) head() *uint32     { return (*uint32)(unsafe.Pointer(&r.mem[0])) }
func (r *ring) tail() *uint32     { return (*uint32)(unsafe.Pointer(&r.mem[4])) }
func (r *ring) alertable() *int32 { return (*int32)(unsafe.Pointer(&r.mem[8])) }

// size is the Size field of the record at data offset off (off < capacity, aligned).
func (r *ring) size(off uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[ringHeaderSize+off]))
}

// packet is the data of the record at off, with its capacity limited to its size.
func (r *ring) packet(off, size uint32) []byte {
	start := ringHeaderSize + off + recordHeader
	return r.mem[start : start+size : start+size]
}

func (r *ring) wrap(x uint32) uint32 { return x & (r.capacity - 1) }

func alignRecord(size uint32) uint32 { return (recordHeader + size + 3) &^ 3 }

// free is the space a producer whose Tail is tail may fill.
func (r *ring) free(head, tail uint32) uint32 { return r.wrap(head - tail - recordHeader) }

// next validates the record at head, with the producer's Tail at tail, as Wintun
// checks every read (and refusing empty records): it returns the record's size and the offset after it, ErrNoMoreItems
// when the ring is empty, errRingEOF at the end of life and ErrInvalidData when the
// indices or the size cannot be right.
func (r *ring) next(head, tail uint32) (size, after uint32, err error) {
	if head >= r.capacity || tail >= r.capacity {
		return 0, 0, errRingEOF
	}
	if head&3 != 0 || tail&3 != 0 {
		return 0, 0, ErrInvalidData
	}
	if head == tail {
		return 0, 0, ErrNoMoreItems
	}
	used := r.wrap(tail - head)
	if used < recordHeader {
		return 0, 0, ErrInvalidData
	}
	size = *r.size(head) &^ recordFlag
	// Neither producer writes an empty record, and an empty slice could not be
	// released (it does not point into the ring): the reader would be stuck.
	if *r.size(head) > PacketSizeMax || size == 0 {
		return 0, 0, ErrInvalidData
	}
	if alignRecord(size) > used {
		return 0, 0, ErrInvalidData
	}
	return size, r.wrap(head + alignRecord(size)), nil
}

// offsetOf finds the record that p, a slice handed out by this ring, belongs to.
func (r *ring) offsetOf(p []byte) (uint32, bool) {
	if cap(p) == 0 {
		return 0, false
	}
	base := uintptr(unsafe.Pointer(&r.mem[ringHeaderSize]))
	ptr := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	if ptr < base+recordHeader || ptr >= base+uintptr(r.capacity)+recordHeader {
		return 0, false
	}
	off := uint32(ptr - base - recordHeader)
	return off, off&3 == 0
}

// ringReader is the application's consumer side of a ring: packets are handed out in
// order and released in any order; the shared Head advances over the leading run of
// released records only.
type ringReader struct {
	r           *ring
	mu          sync.Mutex
	head        uint32 // next record to hand out
	headRelease uint32 // first record not released, as published in Head
	pending     uint32 // records handed out and not yet passed by headRelease
	held        heldRecords
}

// receive hands out the next packet: a batch of one.
func (c *ringReader) receive() ([]byte, error) {
	var p [1][]byte
	_, err := c.receiveBatch(p[:])
	return p[0], err
}

// release gives back the space of a packet returned by receive. It reports false,
// changing nothing, when p is not a packet of this ring that is still held.
func (c *ringReader) release(p []byte) bool { return c.releaseBatch([][]byte{p}) == 0 }

// markReleased sets the release bit of the held packet p at off; c.mu is held.
func (c *ringReader) markReleased(off uint32, p []byte) bool {
	if c.head >= c.r.capacity || c.r.wrap(off-c.headRelease) >= c.r.wrap(c.head-c.headRelease) || !c.held.isHeld(off) {
		return false
	}
	sz := c.r.size(off)
	if *sz&recordFlag != 0 || *sz != uint32(len(p)) {
		return false
	}
	c.held.unhold(off)
	*sz |= recordFlag
	return true
}

// advance moves Head over the leading run of released packets; c.mu is held.
func (c *ringReader) advance() {
	for c.pending > 0 {
		s := *c.r.size(c.headRelease)
		if s&recordFlag == 0 {
			break
		}
		c.headRelease = c.r.wrap(c.headRelease + alignRecord(s&^recordFlag))
		c.pending--
	}
	atomic.StoreUint32(c.r.head(), c.headRelease)
}

// ringWriter is the application's producer side of a ring: space is allocated in
// order and committed in any order; the shared Tail advances over the leading run of
// committed records only, so the consumer sees packets in allocation order.
type ringWriter struct {
	r           *ring
	mu          sync.Mutex
	tail        uint32 // next free byte
	tailRelease uint32 // first record not committed, as published in Tail
	pending     uint32 // records allocated and not yet passed by tailRelease
	held        heldRecords
}

// allocate allocates one packet: a batch of one.
func (w *ringWriter) allocate(size int) ([]byte, error) {
	var p [1][]byte
	_, err := w.allocateBatch([]int{size}, p[:])
	return p[0], err
}

// commit hands over a packet returned by allocate. It reports whether p was such a
// packet not yet committed.
func (w *ringWriter) commit(p []byte) bool { return w.commitBatch([][]byte{p}) == 0 }

// markCommitted clears the bit of the uncommitted packet p at off; w.mu is held.
func (w *ringWriter) markCommitted(off uint32, p []byte) bool {
	if w.tail >= w.r.capacity || w.r.wrap(off-w.tailRelease) >= w.r.wrap(w.tail-w.tailRelease) || !w.held.isHeld(off) {
		return false
	}
	sz := w.r.size(off)
	if *sz != uint32(len(p))|recordFlag {
		return false
	}
	w.held.unhold(off)
	*sz &^= recordFlag
	return true
}

// advance moves Tail over the leading run of committed packets; w.mu is held.
func (w *ringWriter) advance() {
	for w.pending > 0 {
		s := *w.r.size(w.tailRelease)
		if s&recordFlag != 0 {
			break
		}
		w.tailRelease = w.r.wrap(w.tailRelease + alignRecord(s))
		w.pending--
	}
	atomic.StoreUint32(w.r.tail(), w.tailRelease)
}

// The ring operations work on bundles: one lock and one publication of Head or Tail
// per bundle; the single-packet calls are bundles of one.

// receiveBatch hands out up to len(packets) packets.
func (c *ringReader) receiveBatch(packets [][]byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tail := atomic.LoadUint32(c.r.tail())
	n := 0
	for n < len(packets) {
		size, after, err := c.r.next(c.head, tail)
		if err != nil {
			if n > 0 && err == ErrNoMoreItems {
				break
			}
			return n, err
		}
		packets[n] = c.r.packet(c.head, size)
		c.held.hold(c.r, c.head)
		c.head = after
		c.pending++
		n++
	}
	return n, nil
}

// releaseBatch releases packets handed out by receive or receiveBatch; it returns how
// many of them were not held packets of this ring (and were ignored).
func (c *ringReader) releaseBatch(packets [][]byte) (refused int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	moved := false
	for _, p := range packets {
		off, ok := c.r.offsetOf(p)
		if !ok || !c.markReleased(off, p) {
			refused++
			continue
		}
		moved = moved || off == c.headRelease
	}
	if moved {
		c.advance()
	}
	return refused
}

// allocateBatch allocates len(sizes) packets in order, as many as fit.
func (w *ringWriter) allocateBatch(sizes []int, packets [][]byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Head is read under the lock: a producer that read it before taking the lock
	// could use space that another producer has filled since (Wintun's 2026 fix).
	head := atomic.LoadUint32(w.r.head())
	if w.tail >= w.r.capacity || head >= w.r.capacity {
		return 0, errRingEOF
	}
	free := w.r.free(head, w.tail)
	for n, size := range sizes {
		asize := alignRecord(uint32(size))
		if asize > free {
			return n, ErrBufferOverflow
		}
		free -= asize
		*w.r.size(w.tail) = uint32(size) | recordFlag
		packets[n] = w.r.packet(w.tail, uint32(size))
		w.held.hold(w.r, w.tail)
		w.tail = w.r.wrap(w.tail + asize)
		w.pending++
	}
	return len(sizes), nil
}

// commitBatch commits packets from allocate or allocateBatch; it returns how many
// were not uncommitted packets of this ring (and were ignored).
func (w *ringWriter) commitBatch(packets [][]byte) (refused int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	moved := false
	for _, p := range packets {
		off, ok := w.r.offsetOf(p)
		if !ok || !w.markCommitted(off, p) {
			refused++
			continue
		}
		moved = moved || off == w.tailRelease
	}
	if moved {
		w.advance()
	}
	return refused
}
