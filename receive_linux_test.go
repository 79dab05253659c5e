package wintun_test

import (
	"bytes"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"
)

// TestReceiveSizes sends UDP datagrams of sizes on both sides of how much of a read
// the session puts straight into the ring (the rest goes beside it, and a packet that
// is not a super-packet is then copied in), through an adapter whose MTU lets the
// kernel hand each over whole, into a small ring that the test never releases, so the
// ring runs from empty to too full for anything. Every datagram must arrive whole or
// be counted as a ring-full drop.
func TestReceiveSizes(t *testing.T) {
	ns := netns.ForTest(t)
	a, s := nsAdapterWith(t, ns, "wtsizes", wintun.RingCapacityMin, nil, "10.212.0.1/24")
	if err := ns.Do(func() error { return a.SetMTU(65535) }); err != nil {
		t.Fatal(err)
	}
	c := udpSocket(t, ns, "10.212.0.1:0", "10.212.0.2:9")
	sizes := []int{100, 1472, 2020, 2021, 2048, 2500, 9000, 30000, 65535 - 28}
	var sent [][]byte
	for i := 0; i < 40; i++ {
		d := make([]byte, sizes[i%len(sizes)])
		for j := range d {
			d[j] = byte(i + j*7)
		}
		if _, err := c.Write(d); err != nil {
			t.Fatalf("datagram %d of %d bytes: %v", i, len(d), err)
		}
		sent = append(sent, d)
	}
	got, matched := 0, 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if p, err := s.ReceivePacket(); err == nil {
			in, perr := packet.Parse(p)
			if perr != nil || in.Proto != packet.ProtoUDP || in.DstPort != 9 {
				continue // not one of the test's datagrams
			}
			payload := in.Payload[8:]
			for got < len(sent) && !bytes.Equal(payload, sent[got]) {
				got++ // dropped for want of room, or damaged: counted below
			}
			if got == len(sent) {
				t.Fatalf("a datagram of %d bytes that was not sent (or arrived out of order)", len(payload))
			}
			got++
			matched++
			continue
		} else if err != wintun.ErrNoMoreItems {
			t.Fatal(err)
		}
		if st := a.Stats(); uint64(matched)+st.ReceiveDropsRingFull >= uint64(len(sent)) {
			break
		}
		select {
		case <-s.ReadWaitEvent():
		case <-time.After(10 * time.Millisecond):
		}
	}
	st := a.Stats()
	if matched == 0 || st.ReceiveDropsRingFull == 0 {
		t.Errorf("the ring neither took packets nor ran full: stats %+v", st)
	}
	if st.ReceiveErrors != 0 || st.ReceiveDropsOversize != 0 {
		t.Errorf("receive errors: stats %+v", st)
	}
	// Every datagram delivered was checked whole above; the rest must be counted.
	if uint64(matched)+st.ReceiveDropsRingFull < uint64(len(sent)) {
		t.Errorf("%d datagrams sent, %d delivered, %d dropped for room: some are missing; stats %+v",
			len(sent), matched, st.ReceiveDropsRingFull, st)
	}
}
