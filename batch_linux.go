package wintun

import (
	"fmt"
	"sync/atomic"
)

// ReceivePackets is ReceivePacket for a bundle: it stores up to len(packets) received
// packets, slices into the ring, in packets and returns how many. It returns
// ErrNoMoreItems when there is none, and the errors of ReceivePacket. It takes the
// ring's lock once, which matters to forwarders that move millions of packets.
func (s *Session) ReceivePackets(packets [][]byte) (int, error) {
	if err := s.err(); err != nil {
		return 0, err
	}
	if len(packets) == 0 {
		return 0, nil
	}
	n, err := s.rx.receiveBatch(packets)
	return n, s.ringErr(err)
}

// ReleaseReceivePackets releases packets from ReceivePacket or ReceivePackets, as
// ReleaseReceivePacket does for each.
func (s *Session) ReleaseReceivePackets(packets [][]byte) {
	if s.rx.releaseBatch(packets) > 0 && !s.ended.Load() {
		logWarn("wintun: ReleaseReceivePackets: not packets held from this session", "adapter", s.adapter.name)
	}
}

// AllocateSendPackets allocates one packet per entry of sizes, in order, into packets
// (which must be at least as long), and returns how many it allocated: fewer than
// len(sizes) with ErrBufferOverflow when the ring is full. Sizes are checked as in
// AllocateSendPacket before anything is allocated.
func (s *Session) AllocateSendPackets(sizes []int, packets [][]byte) (int, error) {
	if len(packets) < len(sizes) {
		return 0, fmt.Errorf("wintun: AllocateSendPackets: %d sizes but room for %d packets", len(sizes), len(packets))
	}
	for _, size := range sizes {
		if size < 1 || size > PacketSizeMax {
			return 0, fmt.Errorf("wintun: invalid packet size %d: want 1 to %d", size, PacketSizeMax)
		}
	}
	if err := s.err(); err != nil {
		return 0, err
	}
	n, err := s.tx.allocateBatch(sizes, packets)
	return n, s.ringErr(err)
}

// SendPackets commits packets from AllocateSendPacket or AllocateSendPackets, as
// SendPacket does for each, with a single wake-up of the kernel side.
func (s *Session) SendPackets(packets [][]byte) {
	if s.tx.commitBatch(packets) > 0 && !s.ended.Load() {
		logWarn("wintun: SendPackets: not packets allocated from this session", "adapter", s.adapter.name)
	}
	s.wakeWriter()
}

// wakeWriter wakes the kernel writer if it said it would sleep. Tail was published
// with a sequentially consistent store before this load, so either the writer re-reads
// Tail after setting Alertable or it gets this token: no missed wake-up.
func (s *Session) wakeWriter() {
	if atomic.LoadInt32(s.txr.alertable()) != 0 {
		select {
		case s.txWake <- struct{}{}:
		default:
		}
	}
}
