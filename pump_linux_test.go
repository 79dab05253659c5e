package wintun

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.wintun.dev/wintun/internal/offload"
	"golang.org/x/sys/unix"
)

// fakeSender is an engine's sender that keeps what it is asked to write and refuses
// the coalesced writes that refuse says.
type fakeSender struct {
	mu        sync.Mutex
	coalesced int                // coalesced writes seen so far
	refuse    func(nth int) bool // whether the nth coalesced write (from 0) is refused
	written   [][]byte           // each accepted write, virtio_net_hdr first
}

func (f *fakeSender) send(units []sendUnit) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range units {
		u := &units[i]
		u.err = nil
		if u.iov == nil {
			continue
		}
		if u.gso != 0 {
			f.coalesced++
			if f.refuse(f.coalesced - 1) {
				u.err = unix.EINVAL
				continue
			}
		}
		f.written = append(f.written, bytes.Join(u.iov, nil))
	}
	return len(units), nil
}

func (f *fakeSender) close() {}

// idleReader is an engine's reader that reads nothing.
type idleReader struct{ stopped chan struct{} }

func (r idleReader) receive(*receiver) error { <-r.stopped; return nil }
func (r idleReader) stop()                   { close(r.stopped) }
func (r idleReader) close()                  {}

// tcpSegment is an IPv4 TCP segment of the test's flow with valid checksums.
func tcpSegment(id uint16, seq uint32, payload []byte) []byte {
	p := make([]byte, 40+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], id)
	binary.BigEndian.PutUint16(p[6:], 0x4000) // DF
	copy(p[12:], []byte{10, 9, 0, 1, 10, 9, 0, 2})
	binary.BigEndian.PutUint16(p[10:], offload.Checksum(p[:20], 0))
	binary.BigEndian.PutUint16(p[20:], 40000)
	binary.BigEndian.PutUint16(p[22:], 5201)
	binary.BigEndian.PutUint32(p[24:], seq)
	p[32], p[33] = 5<<4, 0x10 // data offset, ACK
	binary.BigEndian.PutUint16(p[34:], 500)
	copy(p[40:], payload)
	pseudo := uint64(6+len(p)-20) + uint64(binary.BigEndian.Uint32(p[12:])) + uint64(binary.BigEndian.Uint32(p[16:]))
	binary.BigEndian.PutUint16(p[36:], offload.Checksum(p[20:], pseudo))
	return p
}

// TestCoalescingProbe runs a session's writer against a sender that refuses coalesced
// writes: the first refusal switches TCP coalescing off and the same packets go out
// one by one, each once; once the kernel has taken a coalesced write, a later refusal
// counts its packets as send errors and nothing is written twice.
func TestCoalescingProbe(t *testing.T) {
	for _, c := range []struct {
		name       string
		refuse     func(nth int) bool
		wantSingle int // packets written one by one
		wantSuper  int // coalesced writes taken
		wantErrors uint64
	}{
		{"all refused", func(int) bool { return true }, 16, 0, 0},
		{"first refused", func(nth int) bool { return nth == 0 }, 16, 0, 0},
		{"later refused", func(nth int) bool { return nth == 1 }, 0, 1, 8},
		{"none refused", func(int) bool { return false }, 0, 2, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := &fakeSender{refuse: c.refuse}
			s := &Session{
				adapter: &Adapter{name: "fake"}, vnetHdr: true, tcpGRO: true,
				txr: newRing(RingCapacityMin), txWake: make(chan struct{}, 1),
				done: make(chan struct{}), writerDone: make(chan struct{}),
				eng: engine{idleReader{make(chan struct{})}, fake},
			}
			s.tx.r = s.txr
			go s.sendLoop()
			// Two runs of 8 full segments, committed at once so that the writer
			// sees each run whole: the first ends with PSH.
			sizes := make([]int, 16)
			var segs [][]byte
			for i := range sizes {
				payload := bytes.Repeat([]byte{byte(i)}, 1000)
				seg := tcpSegment(uint16(i), uint32(1000*i), payload)
				if i == 7 {
					seg[33] |= 0x08 // PSH
					binary.BigEndian.PutUint16(seg[36:], 0)
					pseudo := uint64(6+len(seg)-20) + uint64(binary.BigEndian.Uint32(seg[12:])) + uint64(binary.BigEndian.Uint32(seg[16:]))
					binary.BigEndian.PutUint16(seg[36:], offload.Checksum(seg[20:], pseudo))
				}
				segs = append(segs, seg)
				sizes[i] = len(seg)
			}
			pkts := make([][]byte, len(sizes))
			if n, err := s.tx.allocateBatch(sizes, pkts); n != len(sizes) || err != nil {
				t.Fatal(n, err)
			}
			for i := range pkts {
				copy(pkts[i], segs[i])
			}
			s.tx.commitBatch(pkts)
			s.wakeWriter()
			// Wait for the writer to take the whole ring.
			for deadline := time.Now().Add(5 * time.Second); atomic.LoadUint32(s.txr.head()) != atomic.LoadUint32(s.txr.tail()); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the writer did not take the ring")
				}
			}
			close(s.done)
			<-s.writerDone

			st := s.adapter.stats.snapshot()
			single, super := 0, 0
			seen := map[string]int{}
			for _, w := range fake.written {
				if w[1] != offload.GSONone { // gso_type
					super++
					continue
				}
				single++
				seen[string(w[GSOHeaderLen:])]++
			}
			for p, n := range seen {
				if n > 1 {
					t.Errorf("a packet of %d bytes written %d times", len(p), n)
				}
			}
			if single != c.wantSingle || super != c.wantSuper || st.SendErrors != c.wantErrors {
				t.Errorf("single writes %d, coalesced %d, send errors %d; want %d, %d, %d",
					single, super, st.SendErrors, c.wantSingle, c.wantSuper, c.wantErrors)
			}
			if got, want := st.SentPackets, uint64(16)-c.wantErrors; got != want {
				t.Errorf("SentPackets = %d, want %d", got, want)
			}
		})
	}
}
