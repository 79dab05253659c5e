package wintun

import "sync/atomic"

// Batch forms of the ring operations: one lock and one publication of Head or Tail per
// bundle instead of per packet.

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
