package wintun

import (
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"
)

// The fuzz targets feed the ring code arbitrary shared state: Head, Tail, Alertable and
// record bytes, as a buggy or hostile other side could leave them, then drive the
// application's side with a sequence of operations. They check what Wintun promises
// for a corrupt ring: no panic, no access outside the ring's memory, no packet that
// runs past it or over another packet still held, and only ErrNoMoreItems,
// ErrBufferOverflow, ErrInvalidData or end of file as errors.
//
// Run one with, e.g.: go test -run '^$' -fuzz '^FuzzRing$' -fuzztime 30s .

// fuzzCapacity is the capacity of the fuzzed rings: the smallest a session uses.
const fuzzCapacity = RingCapacityMin

// extent is the physical memory of a record, header included, as offsets in r.mem.
type extent struct{ start, end int }

func (e extent) overlaps(o extent) bool { return e.start < o.end && o.start < e.end }

// recordExtent checks that p is a packet slice inside r's data area and returns the
// memory its record occupies.
func recordExtent(t *testing.T, r *ring, p []byte, what string) extent {
	t.Helper()
	if len(p) != cap(p) {
		t.Fatalf("%s: packet of length %d has capacity %d: the application could write past it", what, len(p), cap(p))
	}
	base := uintptr(unsafe.Pointer(&r.mem[0]))
	if len(p) == 0 {
		t.Fatalf("%s: empty packet", what)
	}
	ptr := uintptr(unsafe.Pointer(&p[0]))
	if ptr < base+ringHeaderSize+recordHeader || ptr+uintptr(len(p)) > base+uintptr(len(r.mem)) {
		t.Fatalf("%s: packet [%#x, %#x) outside the ring's data area [%#x, %#x)", what,
			ptr-base, ptr-base+uintptr(len(p)), ringHeaderSize, len(r.mem))
	}
	start := int(ptr-base) - recordHeader
	if (start-ringHeaderSize)&3 != 0 || start-ringHeaderSize >= int(r.capacity) {
		t.Fatalf("%s: record at data offset %#x: not an aligned offset below the capacity", what, start-ringHeaderSize)
	}
	return extent{start, start + recordHeader + len(p)}
}

func checkRingErr(t *testing.T, what string, err error, allowed ...error) {
	t.Helper()
	if err == nil || err == errRingEOF || err == ErrInvalidData {
		return
	}
	for _, a := range allowed {
		if err == a {
			return
		}
	}
	t.Fatalf("%s: unexpected error %v", what, err)
}

// FuzzRing writes head, tail, alertable and records into a ring's header and data
// area, then runs ops, three bytes each (operation, a, b), on a reader and a writer
// of that ring.
func FuzzRing(f *testing.F) {
	rec := func(sizes ...uint32) []byte {
		var b []byte
		for _, s := range sizes {
			b = binary.NativeEndian.AppendUint32(b, s)
			b = append(b, make([]byte, alignRecord(s&^recordFlag)-recordHeader)...)
		}
		return b
	}
	f.Add(uint32(0), uint32(0), int32(0), []byte(nil), []byte{0, 0, 0, 3, 0, 20, 4, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add(uint32(0), uint32(24), int32(1), rec(5, 7), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0})
	f.Add(uint32(fuzzCapacity-8), uint32(16), int32(0), rec(1000, 4), []byte{0, 0, 0, 0, 0, 0, 1, 0, 0, 3, 1, 1})
	f.Add(uint32(0), uint32(8), int32(0), rec(PacketSizeMax+1), []byte{0, 0, 0})
	f.Add(uint32(0), uint32(8), int32(0), rec(100), []byte{0, 0, 0})
	f.Add(uint32(ringEOF), uint32(ringEOF), int32(-1), []byte(nil), []byte{0, 0, 0, 3, 1, 1})
	f.Add(uint32(2), uint32(fuzzCapacity+4), int32(0), rec(3), []byte{0, 0, 0, 3, 0, 0})
	f.Add(uint32(0), uint32(12), int32(0), rec(5|recordFlag), []byte{0, 0, 0, 1, 0, 0, 1, 0, 0, 2, 0, 0})
	f.Add(uint32(0), uint32(0), int32(0), []byte(nil), []byte{3, 0xff, 0xff, 3, 0xff, 0xff, 4, 1, 0, 5, 7, 7, 4, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, head, tail uint32, alertable int32, records []byte, ops []byte) {
		r := newRing(fuzzCapacity)
		start := r.wrap(head) &^ 3
		copy(r.mem[ringHeaderSize+start:], records)
		if n := int(fuzzCapacity-start) + ringSlack; len(records) > n {
			copy(r.mem[ringHeaderSize:ringHeaderSize+fuzzCapacity], records[n:]) // wrap around
		}
		*r.head(), *r.tail(), *r.alertable() = head, tail, alertable
		rd := &ringReader{r: r, head: start, headRelease: start}
		wr := &ringWriter{r: r, tail: r.wrap(tail) &^ 3, tailRelease: r.wrap(tail) &^ 3}

		var received, allocated [][]byte
		var extents []extent // of the packets in received and allocated, while held
		corrupt := false     // shared state written behind both sides' backs
		hold := func(p []byte, what string) {
			e := recordExtent(t, r, p, what)
			if !corrupt {
				for _, o := range extents {
					if e.overlaps(o) {
						t.Fatalf("%s: record [%#x, %#x) overlaps a held record [%#x, %#x)", what, e.start, e.end, o.start, o.end)
					}
				}
			}
			extents = append(extents, e)
		}
		drop := func(p []byte) {
			e := extent{int(uintptr(unsafe.Pointer(&p[0]))-uintptr(unsafe.Pointer(&r.mem[0]))) - recordHeader, 0}
			for i, o := range extents {
				if o.start == e.start {
					extents = append(extents[:i], extents[i+1:]...)
					return
				}
			}
		}
		for len(ops) >= 3 {
			op, a, b := ops[0], ops[1], ops[2]
			ops = ops[3:]
			ab := uint32(a)<<8 | uint32(b)
			switch op % 10 {
			case 0:
				p, err := rd.receive()
				checkRingErr(t, "receive", err, ErrNoMoreItems)
				if err == nil {
					if s := *r.size(uint32(recordExtent(t, r, p, "receive").start - ringHeaderSize)); s&^recordFlag != uint32(len(p)) {
						t.Fatalf("receive: packet of %d bytes, record says %#x", len(p), s)
					}
					hold(p, "receive")
					received = append(received, p)
				}
			case 1:
				if len(received) == 0 {
					continue
				}
				i := int(a) % len(received)
				p := received[i]
				if !rd.release(p) && !corrupt {
					t.Fatalf("release refused a held packet")
				}
				if rd.release(p) {
					t.Fatalf("release accepted the same packet twice")
				}
				received = append(received[:i], received[i+1:]...)
				drop(p)
			case 2: // slices that are not held packets
				if rd.release(make([]byte, int(a)+1)) || wr.commit(make([]byte, int(a)+1)) || rd.release(nil) || wr.commit(nil) {
					t.Fatalf("a slice from outside the ring was accepted")
				}
				if off := int(ab) % len(r.mem); rd.release(r.mem[off:]) || wr.commit(r.mem[off:]) {
					// The tail of the ring's memory is never a held packet: its capacity
					// runs to the end of the ring.
					if !corrupt {
						t.Fatalf("a slice of the ring's memory at %#x was accepted as a packet", off)
					}
				}
				if len(received) > 0 {
					if p := received[int(b)%len(received)]; len(p) > 1 && rd.release(p[:len(p)-1]) {
						t.Fatalf("release accepted a shortened packet")
					}
				}
			case 3:
				size := 1 + int(ab)%PacketSizeMax
				p, err := wr.allocate(size)
				checkRingErr(t, "allocate", err, ErrBufferOverflow)
				if err == nil {
					if len(p) != size {
						t.Fatalf("allocate(%d) returned %d bytes", size, len(p))
					}
					hold(p, "allocate")
					for i := range p {
						p[i] = b
					}
					allocated = append(allocated, p)
				}
			case 4:
				if len(allocated) == 0 {
					continue
				}
				i := int(a) % len(allocated)
				p := allocated[i]
				if !wr.commit(p) && !corrupt {
					t.Fatalf("commit refused an allocated packet")
				}
				if wr.commit(p) {
					t.Fatalf("commit accepted the same packet twice")
				}
				allocated = append(allocated[:i], allocated[i+1:]...)
				drop(p)
			case 5: // scribble a size field
				off := (ab * 4) % fuzzCapacity
				*r.size(off) = ab<<16 | uint32(a)<<3 | uint32(b)
				corrupt = true
			case 6:
				*r.tail() = ab * 4
				if a == 0xff {
					*r.tail() = ringEOF
				}
				corrupt = true
			case 7:
				*r.head() = ab * 4
				if a == 0xff {
					*r.head() = ringEOF
				}
				corrupt = true
			case 8:
				h, tl := uint32(a)<<9|uint32(b&3), uint32(b)<<9|uint32(a&7)
				if op&0x80 != 0 {
					h, tl = *r.head(), *r.tail()
				}
				size, after, err := r.next(h, tl)
				checkRingErr(t, "next", err, ErrNoMoreItems)
				if err == nil {
					used := r.wrap(tl - h)
					if size > PacketSizeMax || alignRecord(size) > used || after != r.wrap(h+alignRecord(size)) || h&3 != 0 {
						t.Fatalf("next(%#x, %#x) = size %#x after %#x: outside the used space %#x", h, tl, size, after, used)
					}
					_ = r.packet(h, size) // must be inside the ring's memory
				}
			case 9: // the room the kernel side's producer computes from a shared Head
				if free := r.free(*r.head(), wr.tail); free >= fuzzCapacity {
					t.Fatalf("free(%#x, %#x) = %#x, more than the capacity", *r.head(), wr.tail, free)
				}
			}
		}
	})
}

// FuzzRingNext checks ring.next, the validation of every read, against a direct
// statement of Wintun's rules.
func FuzzRingNext(f *testing.F) {
	f.Add(uint32(0), uint32(8), uint32(4))
	f.Add(uint32(fuzzCapacity-4), uint32(4), uint32(1))
	f.Add(uint32(0), uint32(8), uint32(5))
	f.Add(uint32(16), uint32(16), uint32(0))
	f.Add(uint32(0), uint32(fuzzCapacity), uint32(0))
	f.Add(uint32(6), uint32(10), uint32(0))
	f.Add(uint32(0), uint32(0x10010), uint32(PacketSizeMax))
	f.Add(uint32(0), uint32(0x10010), uint32(PacketSizeMax+1))
	f.Add(uint32(0), uint32(0x10010), uint32(0x80000010))
	f.Fuzz(func(t *testing.T, head, tail, size uint32) {
		r := newRing(fuzzCapacity)
		if head < fuzzCapacity {
			*r.size(head &^ 3) = size
		}
		got, after, err := r.next(head, tail)
		var want error
		switch {
		case head >= fuzzCapacity || tail >= fuzzCapacity:
			want = errRingEOF
		case head&3 != 0 || tail&3 != 0:
			want = ErrInvalidData
		case head == tail:
			want = ErrNoMoreItems
		case size > PacketSizeMax || size == 0 || alignRecord(size) > (tail-head)&(fuzzCapacity-1):
			want = ErrInvalidData
		}
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Fatalf("next(%#x, %#x) with size %#x: error %v, want %v", head, tail, size, err, want)
		}
		if err == nil {
			if got != size || after != (head+alignRecord(size))&(fuzzCapacity-1) {
				t.Fatalf("next(%#x, %#x) with size %#x = %#x, %#x", head, tail, size, got, after)
			}
			if p := r.packet(head, got); len(p) != int(size) {
				t.Fatalf("packet of %d bytes, want %d", len(p), size)
			}
		}
	})
}

// TestEmptyRecordInvalid is the regression test for a record of size 0 in a corrupt
// ring (found by FuzzRing): it was handed out as an empty slice, which
// ReleaseReceivePacket cannot map back to its record, so Head could never move again.
func TestEmptyRecordInvalid(t *testing.T) {
	r, _, rd := newPair(RingCapacityMin)
	*r.size(0) = 0
	*r.tail() = 8
	if p, err := rd.receive(); err != ErrInvalidData {
		t.Fatalf("receive of an empty record = %q, %v; want ErrInvalidData", p, err)
	}
	if _, _, err := r.next(0, 8); err != ErrInvalidData {
		t.Fatalf("next over an empty record = %v, want ErrInvalidData", err)
	}
}

// FuzzValidPacket checks the filter applied to every packet the application commits.
func FuzzValidPacket(f *testing.F) {
	for _, s := range [][]byte{nil, {0}, {0x45}, make([]byte, 19), make([]byte, 20), make([]byte, 39), make([]byte, 40)} {
		f.Add(s)
	}
	v4 := make([]byte, 20)
	v4[0] = 0x45
	v6 := make([]byte, 40)
	v6[0] = 0x60
	f.Add(v4)
	f.Add(v4[:19])
	f.Add(v6)
	f.Add(v6[:39])
	f.Add(append([]byte{0x70}, v4[1:]...))
	f.Fuzz(func(t *testing.T, p []byte) {
		want := len(p) >= 20 && p[0]>>4 == 4 || len(p) >= 40 && p[0]>>4 == 6
		if got := validPacket(p); got != want {
			t.Fatalf("validPacket(% x) = %v, want %v", p, got, want)
		}
	})
}
