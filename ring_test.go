package wintun

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func newPair(capacity uint32) (*ring, *ringWriter, *ringReader) {
	r := newRing(capacity)
	return r, &ringWriter{r: r}, &ringReader{r: r}
}

func mustAllocate(t *testing.T, w *ringWriter, size int) []byte {
	t.Helper()
	p, err := w.allocate(size)
	if err != nil {
		t.Fatalf("allocate(%d): %v", size, err)
	}
	return p
}

func TestCheckCapacity(t *testing.T) {
	for _, c := range []uint32{RingCapacityMin, 0x40000, 0x100000, RingCapacityMax} {
		if err := checkCapacity(c); err != nil {
			t.Errorf("checkCapacity(%#x) = %v, want nil", c, err)
		}
	}
	for _, c := range []uint32{0, 1, RingCapacityMin / 2, RingCapacityMin + 4, 0x30000, RingCapacityMax * 2, 0xFFFFFFFF} {
		if err := checkCapacity(c); err == nil {
			t.Errorf("checkCapacity(%#x) = nil, want an error", c)
		}
	}
}

func TestRingLayout(t *testing.T) {
	r, w, rd := newPair(RingCapacityMin)
	if got, want := len(r.mem), 12+RingCapacityMin+0x10000; got != want {
		t.Fatalf("ring memory is %d bytes, want header 12 + capacity + 0x10000 = %d", got, want)
	}
	p := mustAllocate(t, w, 5)
	copy(p, "hello")
	if got := binary.NativeEndian.Uint32(r.mem[12:]); got != 5|recordFlag {
		t.Errorf("size of an uncommitted record = %#x, want 5 with bit 31 set", got)
	}
	if *r.tail() != 0 {
		t.Errorf("Tail moved before commit: %d", *r.tail())
	}
	if !w.commit(p) {
		t.Fatal("commit refused its own packet")
	}
	if got := binary.NativeEndian.Uint32(r.mem[12:]); got != 5 {
		t.Errorf("size after commit = %#x, want 5", got)
	}
	if string(r.mem[16:21]) != "hello" {
		t.Errorf("data at offset 16 = %q, want the packet right after its 4-byte size", r.mem[16:21])
	}
	if got := binary.NativeEndian.Uint32(r.mem[4:]); got != 12 {
		t.Errorf("Tail = %d, want 12: 4-byte size + 5 bytes padded to 8", got)
	}
	got, err := rd.receive()
	if err != nil || string(got) != "hello" || cap(got) != 5 {
		t.Fatalf("receive = %q (cap %d), %v", got, cap(got), err)
	}
	if _, err := rd.receive(); err != ErrNoMoreItems {
		t.Errorf("receive on an empty ring = %v, want ErrNoMoreItems", err)
	}
	rd.release(got)
	if *r.head() != 12 {
		t.Errorf("Head = %d after release, want 12", *r.head())
	}
}

// TestRingWrap fills and drains the ring many times with sizes that put records
// across the wrap point: every packet must come out whole and contiguous.
func TestRingWrap(t *testing.T) {
	r, w, rd := newPair(RingCapacityMin)
	sawSlack := false
	seq := uint32(0)
	for round := 0; round < 400; round++ {
		var held [][]byte
		for i := 0; i < 3; i++ {
			size := 1000 + int(seq*7919%60000)
			p, err := w.allocate(size)
			if err == ErrBufferOverflow {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			off, _ := r.offsetOf(p)
			if off+recordHeader+uint32(size) > r.capacity {
				sawSlack = true
			}
			for j := range p {
				p[j] = byte(seq + uint32(j))
			}
			binary.BigEndian.PutUint32(p, seq)
			seq++
			held = append(held, p)
		}
		for _, p := range held {
			w.commit(p)
		}
		for range held {
			p, err := rd.receive()
			if err != nil {
				t.Fatal(err)
			}
			s := binary.BigEndian.Uint32(p)
			for j := 4; j < len(p); j++ {
				if p[j] != byte(s+uint32(j)) {
					t.Fatalf("packet %d corrupt at byte %d", s, j)
				}
			}
			rd.release(p)
		}
		if *r.head() != *r.tail() {
			t.Fatalf("ring not empty after draining: head %d tail %d", *r.head(), *r.tail())
		}
	}
	if !sawSlack {
		t.Error("no record ran into the slack after the wrap point; the test does not test wrapping")
	}
}

func TestRingOverflowKeepsOneSlot(t *testing.T) {
	const c = RingCapacityMin
	_, w, rd := newPair(c)
	// Two records of exactly half the capacity would fill every byte, which the
	// free slot forbids.
	p := mustAllocate(t, w, c/2-4)
	if _, err := w.allocate(c/2 - 4); err != ErrBufferOverflow {
		t.Fatalf("second half-ring allocation: %v, want ErrBufferOverflow", err)
	}
	q := mustAllocate(t, w, c/2-8) // leaves exactly the free slot
	if _, err := w.allocate(1); err != ErrBufferOverflow {
		t.Fatalf("allocation in a full ring: %v, want ErrBufferOverflow", err)
	}
	w.commit(p)
	w.commit(q)
	got, _ := rd.receive()
	rd.release(got)
	mustAllocate(t, w, 100) // space came back
}

func TestRingOutOfOrderRelease(t *testing.T) {
	r, w, rd := newPair(RingCapacityMin)
	for i := 0; i < 4; i++ {
		p := mustAllocate(t, w, 10+i)
		w.commit(p)
	}
	var got [4][]byte
	for i := range got {
		var err error
		if got[i], err = rd.receive(); err != nil {
			t.Fatal(err)
		}
	}
	ends := []uint32{16, 32, 48, 68} // 4+10..13 bytes, padded to 4
	rd.release(got[1])
	rd.release(got[2])
	if *r.head() != 0 {
		t.Fatalf("Head moved to %d while the first packet is held", *r.head())
	}
	if rd.release(got[1]) {
		t.Error("a second release of the same packet was accepted")
	}
	rd.release(got[0])
	if *r.head() != ends[2] {
		t.Fatalf("Head = %d, want %d: past the leading run of released packets", *r.head(), ends[2])
	}
	rd.release(got[3])
	if *r.head() != ends[3] {
		t.Fatalf("Head = %d, want %d", *r.head(), ends[3])
	}
}

func TestRingOutOfOrderCommit(t *testing.T) {
	r, w, rd := newPair(RingCapacityMin)
	var p [3][]byte
	for i := range p {
		p[i] = mustAllocate(t, w, 8)
		p[i][0] = byte(i)
	}
	w.commit(p[2])
	w.commit(p[1])
	if *r.tail() != 0 {
		t.Fatalf("Tail moved to %d while the first allocation is uncommitted", *r.tail())
	}
	if _, err := rd.receive(); err != ErrNoMoreItems {
		t.Fatalf("receive before the first commit: %v, want ErrNoMoreItems", err)
	}
	if w.commit(p[1]) {
		t.Error("a second commit of the same packet was accepted")
	}
	w.commit(p[0])
	for i := 0; i < 3; i++ {
		q, err := rd.receive()
		if err != nil || q[0] != byte(i) {
			t.Fatalf("packet %d: %v %v; want allocation order", i, q, err)
		}
	}
}

func TestRingRefusesForeignSlices(t *testing.T) {
	r, w, rd := newPair(RingCapacityMin)
	p := mustAllocate(t, w, 16)
	for _, bad := range [][]byte{nil, {}, make([]byte, 16), r.mem[12:28], p[4:], p[:8]} {
		if w.commit(bad) {
			t.Errorf("commit accepted a slice that is not an allocated packet (len %d)", len(bad))
		}
		if rd.release(bad) {
			t.Errorf("release accepted a slice that is not a received packet (len %d)", len(bad))
		}
	}
	w.commit(p)
	if rd.release(p) {
		t.Error("release accepted a packet that was never received")
	}
}

// TestRingRefusesSubSlices gives back a sub-slice of a packet whose bytes just before
// it read like the size of a record of its length: only the exact slice handed out
// may release or commit a packet, or bit 31 would be set inside packet data.
func TestRingRefusesSubSlices(t *testing.T) {
	_, w, rd := newPair(RingCapacityMin)
	p := mustAllocate(t, w, 100)
	binary.NativeEndian.PutUint32(p[16:], 80|recordFlag) // p[20:] looks uncommitted
	if w.commit(p[20:]) {
		t.Error("commit accepted a sub-slice that starts inside an allocated packet")
	}
	if !w.commit(p) {
		t.Fatal("commit refused the packet itself")
	}
	q, err := rd.receive()
	if err != nil {
		t.Fatal(err)
	}
	binary.NativeEndian.PutUint32(q[16:], 80) // q[20:] looks held
	if rd.release(q[20:]) {
		t.Error("release accepted a sub-slice that starts inside a received packet")
	}
	if got := binary.NativeEndian.Uint32(q[16:]); got != 80 {
		t.Errorf("packet data changed by a refused release: %#x", got)
	}
	if rd.releaseBatch([][]byte{q[20:]}) != 1 {
		t.Error("releaseBatch accepted a sub-slice")
	}
	if !rd.release(q) {
		t.Error("release refused the packet itself")
	}
	if rd.release(q) {
		t.Error("a second release of the same packet was accepted")
	}
}

func TestRingCorruption(t *testing.T) {
	setup := func() (*ring, *ringReader) {
		r, w, rd := newPair(RingCapacityMin)
		w.commit(mustAllocate(t, w, 40))
		return r, rd
	}
	cases := []struct {
		name string
		fix  func(r *ring)
		want error
	}{
		{"tail at end of life", func(r *ring) { *r.tail() = ringEOF }, errRingEOF},
		{"tail beyond capacity", func(r *ring) { *r.tail() = RingCapacityMin }, errRingEOF},
		{"misaligned tail", func(r *ring) { *r.tail() = 46 }, ErrInvalidData},
		{"size above the maximum", func(r *ring) { *r.size(0) = PacketSizeMax + 1 }, ErrInvalidData},
		{"size past the tail", func(r *ring) { *r.size(0) = 41 }, ErrInvalidData},
		{"huge size", func(r *ring) { *r.size(0) = 0x7FFFFFFF }, ErrInvalidData},
	}
	for _, c := range cases {
		r, rd := setup()
		c.fix(r)
		if _, err := rd.receive(); err != c.want {
			t.Errorf("%s: receive = %v, want %v", c.name, err, c.want)
		}
		if _, err := rd.receive(); err != c.want {
			t.Errorf("%s: the ring moved after reporting %v", c.name, c.want)
		}
	}
	// The writer side reads Head: at end of life, allocation is refused.
	r, w, _ := newPair(RingCapacityMin)
	*r.head() = ringEOF
	if _, err := w.allocate(10); err != errRingEOF {
		t.Errorf("allocate with Head at end of life = %v, want errRingEOF", err)
	}
}

// TestRingConcurrent runs several producers and consumers on one ring under the race
// detector: every packet arrives exactly once, intact, and each producer's packets
// in its allocation order.
func TestRingConcurrent(t *testing.T) {
	const producers, consumers, perProducer = 4, 3, 20000
	_, w, rd := newPair(RingCapacityMin)
	var wg sync.WaitGroup
	var mu sync.Mutex
	last := make([]int64, producers)
	for i := range last {
		last[i] = -1
	}
	var received atomic.Int64
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			for seq := 0; seq < perProducer; {
				size := 8 + (seq*31+id)%300
				b, err := w.allocate(size)
				if err == ErrBufferOverflow {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				binary.BigEndian.PutUint32(b[0:], uint32(id))
				binary.BigEndian.PutUint32(b[4:], uint32(seq))
				for j := 8; j < len(b); j++ {
					b[j] = byte(id + seq + j)
				}
				w.commit(b)
				seq++
			}
		}(p)
	}
	done := make(chan struct{})
	var cwg sync.WaitGroup
	for c := 0; c < consumers; c++ {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for received.Load() < producers*perProducer {
				mu.Lock() // receive and check order as one step
				b, err := rd.receive()
				if err == ErrNoMoreItems {
					mu.Unlock()
					select {
					case <-done:
						return
					default:
					}
					continue
				}
				if err != nil {
					mu.Unlock()
					t.Error(err)
					return
				}
				id := binary.BigEndian.Uint32(b[0:])
				seq := int64(binary.BigEndian.Uint32(b[4:]))
				if id >= producers || seq != last[id]+1 {
					t.Errorf("producer %d: got seq %d after %d", id, seq, last[id])
				} else {
					last[id] = seq
				}
				mu.Unlock()
				for j := 8; j < len(b); j++ {
					if b[j] != byte(int(id)+int(seq)+j) {
						t.Errorf("packet %d/%d overwritten at byte %d", id, seq, j)
						break
					}
				}
				received.Add(1)
				rd.release(b)
			}
		}()
	}
	wg.Wait()
	cwg.Wait()
	close(done)
	if got := received.Load(); got != producers*perProducer {
		t.Errorf("received %d packets, want %d", got, producers*perProducer)
	}
	if t.Failed() {
		return
	}
	if _, err := rd.receive(); !errors.Is(err, ErrNoMoreItems) {
		t.Errorf("ring not empty at the end: %v", err)
	}
}

func TestValidPacket(t *testing.T) {
	v4, v6 := make([]byte, 20), make([]byte, 40)
	v4[0], v6[0] = 0x45, 0x60
	for _, c := range []struct {
		p    []byte
		want bool
	}{
		{v4, true}, {v6, true}, {v4[:19], false}, {v6[:39], false}, {nil, false},
		{append([]byte{0x55}, v4[1:]...), false}, {append([]byte{0x00}, v6[1:]...), false},
		{append([]byte{0x65}, v4[1:]...), false}, // IPv6 nibble, IPv4 length
	} {
		if got := validPacket(c.p); got != c.want {
			t.Errorf("validPacket(% x...) = %v, want %v", c.p[:min(len(c.p), 2)], got, c.want)
		}
	}
}

func TestGUID(t *testing.T) {
	g := GUID{0xde, 0xad, 0xba, 0xbe, 0xca, 0xfe, 0xbe, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	const s = "deadbabe-cafe-beef-0123-456789abcdef"
	if g.String() != s {
		t.Errorf("String() = %s, want %s", g, s)
	}
	for _, in := range []string{s, "DEADBABE-CAFE-BEEF-0123-456789ABCDEF", "{" + s + "}"} {
		if got, err := ParseGUID(in); err != nil || got != g {
			t.Errorf("ParseGUID(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", s[:35], s + "0", "deadbabe-cafe-beef-0123-456789abcdeg", "deadbabe_cafe-beef-0123-456789abcdef", "{" + s} {
		if _, err := ParseGUID(in); err == nil {
			t.Errorf("ParseGUID(%q) accepted", in)
		}
	}
	a, _ := newGUID()
	b, _ := newGUID()
	if a == b || a[6]>>4 != 4 {
		t.Errorf("newGUID: %v %v", a, b)
	}
}

func TestCheckName(t *testing.T) {
	for _, n := range []string{"wt0", "a", "exactly15bytes_", "x-y.z_1"} {
		if err := checkName(n); err != nil {
			t.Errorf("checkName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "sixteen_bytes_16", ".", "..", "a/b", "a:b", "a b", "tun%d", "a\tb", "a\x00"} {
		if err := checkName(n); err == nil {
			t.Errorf("checkName(%q) accepted", n)
		}
	}
}

func TestRingBatch(t *testing.T) {
	r, w, rd := newPair(RingCapacityMin)
	out := make([][]byte, 8)
	n, err := w.allocateBatch([]int{10, 20, 30}, out)
	if n != 3 || err != nil {
		t.Fatalf("allocateBatch = %d, %v", n, err)
	}
	for i := 0; i < 3; i++ {
		out[i][0] = byte(i)
	}
	if refused := w.commitBatch([][]byte{out[2], out[0], make([]byte, 4)}); refused != 1 {
		t.Errorf("commitBatch refused %d, want 1 (the foreign slice)", refused)
	}
	in := make([][]byte, 8)
	if n, _ := rd.receiveBatch(in); n != 1 || in[0][0] != 0 {
		t.Fatalf("receiveBatch before the middle packet is committed: %d packets", n)
	}
	w.commitBatch(out[1:2])
	n, err = rd.receiveBatch(in[1:])
	if n != 2 || err != nil || in[1][0] != 1 || in[2][0] != 2 {
		t.Fatalf("receiveBatch = %d, %v; want packets 1 and 2 in order", n, err)
	}
	if n, err := rd.receiveBatch(in); n != 0 || err != ErrNoMoreItems {
		t.Errorf("receiveBatch on an empty ring = %d, %v", n, err)
	}
	if refused := rd.releaseBatch([][]byte{in[2], in[0], in[1]}); refused != 0 {
		t.Errorf("releaseBatch refused %d", refused)
	}
	if *r.head() != *r.tail() {
		t.Errorf("head %d != tail %d after releasing everything", *r.head(), *r.tail())
	}
	// A batch larger than the free space stops at the first packet that does not fit.
	n, err = w.allocateBatch([]int{60000, 60000, 60000}, out)
	if n != 2 || err != ErrBufferOverflow {
		t.Errorf("allocateBatch over capacity = %d, %v; want 2, ErrBufferOverflow", n, err)
	}
}
