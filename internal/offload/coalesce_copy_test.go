package offload

import "encoding/binary"

// The copying coalescers: the reference that CoalesceTCPHeaders and
// CoalesceUDPHeaders are tested against (the super-packet in one buffer).

// CoalesceTCP writes the virtio_net_hdr into hdr and the super-packet made of the
// packets of a TCPRun into dst (which must hold MaxCoalesced bytes), and returns the
// super-packet's length. The TCP checksum is left partial, for the kernel to finish
// or to trust.
func CoalesceTCP(pkts [][]byte, hdr, dst []byte) int {
	first := pkts[0]
	ipLen, tcpLen, mss, _ := tcpInfo(first)
	hl := ipLen + tcpLen
	n := copy(dst, first)
	for _, q := range pkts[1:] {
		n += copy(dst[n:], q[hl:])
	}
	if last := pkts[len(pkts)-1]; last[ipLen+13]&tcpPSH != 0 {
		dst[ipLen+13] |= tcpPSH
	}
	typ := uint8(GSOTCPv6)
	if ipLen == 20 {
		typ = GSOTCPv4
	}
	superIP(dst, ipLen, n)
	// A partial checksum holds the folded pseudo-header sum, not complemented.
	binary.BigEndian.PutUint16(dst[ipLen+16:], ^Checksum(nil, pseudoHeaderSum(dst, protoTCP)+uint64(n-ipLen)))
	putVnet(hdr, typ, hl, mss, ipLen, 16)
	return n
}

// CoalesceUDP is CoalesceTCP for a UDPRun: the super-packet's UDP length covers all
// of it and its checksum is left partial.
func CoalesceUDP(pkts [][]byte, hdr, dst []byte) int {
	first := pkts[0]
	ipLen, size, _ := udpInfo(first)
	hl := ipLen + 8
	n := copy(dst, first)
	for _, q := range pkts[1:] {
		n += copy(dst[n:], q[hl:])
	}
	superIP(dst, ipLen, n)
	binary.BigEndian.PutUint16(dst[ipLen+4:], uint16(n-ipLen))
	binary.BigEndian.PutUint16(dst[ipLen+6:], ^Checksum(nil, pseudoHeaderSum(dst, protoUDP)+uint64(n-ipLen)))
	putVnet(hdr, GSOUDPL4, hl, size, ipLen, 6)
	return n
}
