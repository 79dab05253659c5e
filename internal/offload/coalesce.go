package offload

import (
	"bytes"
	"encoding/binary"
)

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
	tcpECE = 0x40
	tcpCWR = 0x80
)

// MaxCoalesced bounds a coalesced super-packet, IP header included.
const MaxCoalesced = 65535 - HeaderLen

// tcpInfo locates the headers of a TCP packet that may take part in coalescing: IPv4
// without options or fragmentation, or IPv6 without extension headers, carrying data
// with nothing but ACK and PSH set.
func tcpInfo(p []byte) (ipLen, tcpLen, payload int, ok bool) {
	switch {
	case len(p) >= 40 && p[0] == 0x45:
		if p[9] != 6 || binary.BigEndian.Uint16(p[6:])&0x3fff != 0 || int(binary.BigEndian.Uint16(p[2:])) != len(p) {
			return 0, 0, 0, false
		}
		ipLen = 20
	case len(p) >= 60 && p[0]>>4 == 6:
		if p[6] != 6 || int(binary.BigEndian.Uint16(p[4:]))+40 != len(p) {
			return 0, 0, 0, false
		}
		ipLen = 40
	default:
		return 0, 0, 0, false
	}
	tcpLen = int(p[ipLen+12]>>4) * 4
	payload = len(p) - ipLen - tcpLen
	if tcpLen < 20 || payload <= 0 || p[ipLen+13]&^(tcpACK|tcpPSH) != 0 || p[ipLen+13]&tcpACK == 0 {
		return 0, 0, 0, false
	}
	return ipLen, tcpLen, payload, true
}

// TCPRun returns how many packets at the start of pkts can be coalesced into one TCP
// super-packet: consecutive segments of one flow, with the same headers but for
// lengths, IDs, sequence numbers and checksums, all of the first one's size but the
// last, which may be shorter or carry PSH. It returns 1 when no coalescing is
// possible.
func TCPRun(pkts [][]byte) int {
	first := pkts[0]
	ipLen, tcpLen, mss, ok := tcpInfo(first)
	if !ok || len(pkts) < 2 || first[ipLen+13]&tcpPSH != 0 {
		return 1
	}
	total := len(first)
	seq := binary.BigEndian.Uint32(first[ipLen+4:]) + uint32(mss)
	n := 1
	for _, q := range pkts[1:] {
		qIP, qTCP, qPayload, ok := tcpInfo(q)
		if !ok || qIP != ipLen || qTCP != tcpLen || qPayload > mss || total+qPayload > MaxCoalesced {
			break
		}
		if ipLen == 20 {
			// Same TOS, DF, TTL, protocol and addresses.
			if q[1] != first[1] || q[6]&0x40 != first[6]&0x40 || q[8] != first[8] || !bytes.Equal(q[12:20], first[12:20]) {
				break
			}
		} else if !bytes.Equal(q[0:4], first[0:4]) || q[7] != first[7] || !bytes.Equal(q[8:40], first[8:40]) {
			break
		}
		// Same ports, acknowledgement, window and options; the next sequence number.
		qt, ft := q[ipLen:], first[ipLen:]
		if !bytes.Equal(qt[0:4], ft[0:4]) || !bytes.Equal(qt[8:12], ft[8:12]) || !bytes.Equal(qt[14:16], ft[14:16]) ||
			!bytes.Equal(qt[20:tcpLen], ft[20:tcpLen]) || binary.BigEndian.Uint32(qt[4:]) != seq {
			break
		}
		n++
		total += qPayload
		seq += uint32(qPayload)
		if qPayload < mss || qt[13]&tcpPSH != 0 {
			break // a short or pushed segment ends the run
		}
	}
	return n
}

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
		binary.BigEndian.PutUint16(dst[2:], uint16(n))
		dst[10], dst[11] = 0, 0
		binary.BigEndian.PutUint16(dst[10:], Checksum(dst[:20], 0))
	} else {
		binary.BigEndian.PutUint16(dst[4:], uint16(n-40))
	}
	// A partial checksum holds the folded pseudo-header sum, not complemented.
	binary.BigEndian.PutUint16(dst[ipLen+16:], ^Checksum(nil, pseudoHeaderSum(dst, protoTCP)+uint64(n-ipLen)))
	hdr[0] = FlagNeedsCsum
	hdr[1] = typ
	binary.NativeEndian.PutUint16(hdr[2:], uint16(hl))
	binary.NativeEndian.PutUint16(hdr[4:], uint16(mss))
	binary.NativeEndian.PutUint16(hdr[6:], uint16(ipLen))
	binary.NativeEndian.PutUint16(hdr[8:], 16)
	return n
}

// udpInfo locates the headers of a UDP datagram that may take part in coalescing: IPv4
// without options or fragmentation, or IPv6 without extension headers, with a UDP
// length that matches the packet.
func udpInfo(p []byte) (ipLen, payload int, ok bool) {
	switch {
	case len(p) >= 28 && p[0] == 0x45:
		if p[9] != 17 || binary.BigEndian.Uint16(p[6:])&0x3fff != 0 || int(binary.BigEndian.Uint16(p[2:])) != len(p) {
			return 0, 0, false
		}
		ipLen = 20
	case len(p) >= 48 && p[0]>>4 == 6:
		if p[6] != 17 || int(binary.BigEndian.Uint16(p[4:]))+40 != len(p) {
			return 0, 0, false
		}
		ipLen = 40
	default:
		return 0, 0, false
	}
	if int(binary.BigEndian.Uint16(p[ipLen+4:])) != len(p)-ipLen {
		return 0, 0, false
	}
	payload = len(p) - ipLen - 8
	return ipLen, payload, payload > 0
}

// UDPRun returns how many datagrams at the start of pkts can be coalesced into one UDP
// super-packet (USO): datagrams of one flow with the same IP header fields, all of the
// first one's size but the last, which may be shorter. It returns 1 when no
// coalescing is possible.
func UDPRun(pkts [][]byte) int {
	first := pkts[0]
	ipLen, size, ok := udpInfo(first)
	if !ok || len(pkts) < 2 {
		return 1
	}
	total, n := len(first), 1
	for _, q := range pkts[1:] {
		qIP, qSize, ok := udpInfo(q)
		if !ok || qIP != ipLen || qSize > size || total+qSize > MaxCoalesced {
			break
		}
		if ipLen == 20 {
			if q[1] != first[1] || q[6]&0x40 != first[6]&0x40 || q[8] != first[8] || !bytes.Equal(q[12:24], first[12:24]) {
				break // TOS, DF, TTL, addresses and ports
			}
		} else if !bytes.Equal(q[0:4], first[0:4]) || q[7] != first[7] || !bytes.Equal(q[8:44], first[8:44]) {
			break // traffic class, flow label, hop limit, addresses and ports
		}
		n++
		total += qSize
		if qSize < size {
			break // a short datagram ends the run
		}
	}
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
	if ipLen == 20 {
		binary.BigEndian.PutUint16(dst[2:], uint16(n))
		dst[10], dst[11] = 0, 0
		binary.BigEndian.PutUint16(dst[10:], Checksum(dst[:20], 0))
	} else {
		binary.BigEndian.PutUint16(dst[4:], uint16(n-40))
	}
	binary.BigEndian.PutUint16(dst[ipLen+4:], uint16(n-ipLen))
	binary.BigEndian.PutUint16(dst[ipLen+6:], ^Checksum(nil, pseudoHeaderSum(dst, protoUDP)+uint64(n-ipLen)))
	hdr[0] = FlagNeedsCsum
	hdr[1] = GSOUDPL4
	binary.NativeEndian.PutUint16(hdr[2:], uint16(hl))
	binary.NativeEndian.PutUint16(hdr[4:], uint16(size))
	binary.NativeEndian.PutUint16(hdr[6:], uint16(ipLen))
	binary.NativeEndian.PutUint16(hdr[8:], 6)
	return n
}
