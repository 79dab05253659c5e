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

// Coalescing follows the rules of Linux's GRO (inet_gro_receive, ipv6_gro_receive,
// tcp_gro_receive, udp_gro_receive_segment), so that writing a super-packet has the
// outcome that writing its packets one by one has: a packet joins or starts a run only
// if its IPv4 header checksum and its L4 checksum verify, because the kernel trusts
// the partial checksum of a super-packet; and only if, but for lengths, checksums and
// the fields that segmentation recomputes, its headers are the ones the kernel's
// segmentation gives every segment. A packet that fails is written alone, unchanged,
// for the kernel to judge.

// ipInfo returns the length of the IP header of a packet of protocol proto that may
// take part in coalescing, or 0: IPv4 without options, with its total length, neither
// a fragment nor with the reserved bit set; or IPv6 without extension headers, with
// its payload length.
func ipInfo(p []byte, proto byte) int {
	switch {
	case len(p) >= 20 && p[0] == 0x45:
		if p[9] != proto || binary.BigEndian.Uint16(p[6:])&^ipv4DF != 0 || int(binary.BigEndian.Uint16(p[2:])) != len(p) {
			return 0
		}
		return 20
	case len(p) >= 40 && p[0]>>4 == 6:
		if p[6] != proto || int(binary.BigEndian.Uint16(p[4:]))+40 != len(p) {
			return 0
		}
		return 40
	}
	return 0
}

// ipv4DF is the IPv4 header's don't-fragment flag, in its 16-bit flags and offset.
const ipv4DF = 0x4000

// df reports whether the IPv4 packet p has DF set.
func df(p []byte) bool { return binary.BigEndian.Uint16(p[6:])&ipv4DF != 0 }

// sameIP reports whether the IP header of q matches first's as GRO requires: for IPv4
// the TOS, DF, TTL and addresses (the ID is ipIDs' business); for IPv6 the traffic
// class, flow label, hop limit and addresses. Protocols and lengths are ipInfo's.
func sameIP(q, first []byte, ipLen int) bool {
	if ipLen == 20 {
		return q[1] == first[1] && df(q) == df(first) && q[8] == first[8] && bytes.Equal(q[12:20], first[12:20])
	}
	return bytes.Equal(q[0:4], first[0:4]) && q[7] == first[7] && bytes.Equal(q[8:40], first[8:40])
}

// ipIDs follows the IPv4 IDs of a run as GRO does: the packets' IDs count up from the
// first's, which segmentation reproduces; or, if the second packet of the run has DF
// set and the first's ID, all carry that ID (RFC 6864: an atomic datagram's ID has no
// use), and segmentation numbers them from it as it numbers any run.
type ipIDs struct {
	fixed bool
}

// follows reports whether q may be packet n (from 1) after first.
func (r *ipIDs) follows(q, first []byte, n int) bool {
	if first[0]>>4 != 4 {
		return true
	}
	d := binary.BigEndian.Uint16(q[4:]) - binary.BigEndian.Uint16(first[4:])
	if n == 1 {
		r.fixed = d == 0 && df(first)
	}
	if r.fixed {
		return d == 0
	}
	return d == uint16(n)
}

// verified reports whether the checksums of p, with an IP header of ipLen bytes and
// protocol proto, verify: the IPv4 header's and the L4 checksum with its
// pseudo-header. A UDP datagram without a checksum (zero, IPv4 only) does not: GRO
// never merges one, for a super-packet's segments would all get one.
func verified(p []byte, ipLen int, proto byte) bool {
	if ipLen == 20 && Checksum(p[:20], 0) != 0 {
		return false
	}
	if proto == protoUDP && p[ipLen+6] == 0 && p[ipLen+7] == 0 {
		return false
	}
	return Checksum(p[ipLen:], pseudoHeaderSum(p, proto)+uint64(len(p)-ipLen)) == 0
}

// tcpInfo locates the headers of a TCP packet that may take part in coalescing (see
// ipInfo), carrying data with nothing but ACK and PSH set.
func tcpInfo(p []byte) (ipLen, tcpLen, payload int, ok bool) {
	ipLen = ipInfo(p, protoTCP)
	if ipLen == 0 || len(p) < ipLen+20 {
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
// super-packet: consecutive segments of one flow whose checksums verify, with the
// same headers but for lengths, IPv4 IDs (see ipIDs), sequence numbers, checksums and
// PSH, all of the first one's size but the last, which may be shorter or carry PSH.
// It returns 1 when no coalescing is possible. Each packet's checksums are verified
// once, when it would join a run.
func TCPRun(pkts [][]byte) int {
	if len(pkts) < 2 {
		return 1
	}
	first := pkts[0]
	ipLen, tcpLen, mss, ok := tcpInfo(first)
	if !ok || first[ipLen+13]&tcpPSH != 0 {
		return 1
	}
	ft := first[ipLen:]
	total := len(first)
	seq := binary.BigEndian.Uint32(ft[4:]) + uint32(mss)
	var ids ipIDs
	n := 1
	for _, q := range pkts[1:] {
		qIP, qTCP, qPayload, ok := tcpInfo(q)
		if !ok || qIP != ipLen || qTCP != tcpLen || qPayload > mss || total+qPayload > MaxCoalesced ||
			!sameIP(q, first, ipLen) || !ids.follows(q, first, n) {
			break
		}
		// Same ports, acknowledgement, data offset and reserved bits (AccECN's AE
		// among them), window, urgent pointer and options; the next sequence number.
		qt := q[ipLen:]
		if !bytes.Equal(qt[0:4], ft[0:4]) || !bytes.Equal(qt[8:13], ft[8:13]) || !bytes.Equal(qt[14:16], ft[14:16]) ||
			!bytes.Equal(qt[18:tcpLen], ft[18:tcpLen]) || binary.BigEndian.Uint32(qt[4:]) != seq {
			break
		}
		if n == 1 && !verified(first, ipLen, protoTCP) {
			return 1
		}
		if !verified(q, ipLen, protoTCP) {
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

// MaxCoalescedHeaders is the size of hdr that CoalesceTCPHeaders and
// CoalesceUDPHeaders need: the longest IP and L4 header of a run that TCPRun or UDPRun
// accepts, an IPv6 header and a TCP header full of options.
const MaxCoalescedHeaders = 40 + 60

// CoalesceTCPHeaders makes the packets of a TCPRun one super-packet without copying
// them: it writes the virtio_net_hdr into vnet and the super-packet's IP and TCP
// headers into hdr, and returns their length hl, which is also where the payload
// starts in every packet of the run. The super-packet is hdr[:hl] followed by
// pkts[i][hl:] for each packet in order, so a caller can hand vnet, the headers and
// the payloads to writev where they lie. The TCP checksum is left partial, for the
// kernel to finish or to trust.
func CoalesceTCPHeaders(pkts [][]byte, vnet, hdr []byte) (hl int) {
	first := pkts[0]
	ipLen, tcpLen, mss, _ := tcpInfo(first)
	hl = ipLen + tcpLen
	h := hdr[:hl]
	copy(h, first)
	n := superLen(pkts, hl)
	if last := pkts[len(pkts)-1]; last[ipLen+13]&tcpPSH != 0 {
		h[ipLen+13] |= tcpPSH
	}
	typ := uint8(GSOTCPv6)
	if ipLen == 20 {
		typ = GSOTCPv4
	}
	superIP(h, ipLen, n)
	// A partial checksum holds the folded pseudo-header sum, not complemented.
	binary.BigEndian.PutUint16(h[ipLen+16:], ^Checksum(nil, pseudoHeaderSum(h, protoTCP)+uint64(n-ipLen)))
	putVnet(vnet, typ, hl, mss, ipLen, 16)
	return hl
}

// CoalesceUDPHeaders is CoalesceTCPHeaders for a UDPRun: the super-packet's UDP
// length covers all of it and its checksum is left partial.
func CoalesceUDPHeaders(pkts [][]byte, vnet, hdr []byte) (hl int) {
	first := pkts[0]
	ipLen, size, _ := udpInfo(first)
	hl = ipLen + 8
	h := hdr[:hl]
	copy(h, first)
	n := superLen(pkts, hl)
	superIP(h, ipLen, n)
	binary.BigEndian.PutUint16(h[ipLen+4:], uint16(n-ipLen))
	binary.BigEndian.PutUint16(h[ipLen+6:], ^Checksum(nil, pseudoHeaderSum(h, protoUDP)+uint64(n-ipLen)))
	putVnet(vnet, GSOUDPL4, hl, size, ipLen, 6)
	return hl
}

// superLen is the length of the super-packet of the run pkts whose headers are hl bytes
// long.
func superLen(pkts [][]byte, hl int) int {
	n := hl
	for _, q := range pkts {
		n += len(q) - hl
	}
	return n
}

// superIP sets the length field of the IP header of h, ipLen bytes long, for a
// super-packet of n bytes; for IPv4 it recomputes the header checksum too.
func superIP(h []byte, ipLen, n int) {
	if ipLen == 20 {
		binary.BigEndian.PutUint16(h[2:], uint16(n))
		h[10], h[11] = 0, 0
		binary.BigEndian.PutUint16(h[10:], Checksum(h[:20], 0))
	} else {
		binary.BigEndian.PutUint16(h[4:], uint16(n-40))
	}
}

// putVnet writes the virtio_net_hdr of a super-packet with a partial L4 checksum.
func putVnet(vnet []byte, typ uint8, hl, size, ipLen, csumOffset int) {
	_ = vnet[HeaderLen-1]
	vnet[0] = FlagNeedsCsum
	vnet[1] = typ
	binary.NativeEndian.PutUint16(vnet[2:], uint16(hl))
	binary.NativeEndian.PutUint16(vnet[4:], uint16(size))
	binary.NativeEndian.PutUint16(vnet[6:], uint16(ipLen))
	binary.NativeEndian.PutUint16(vnet[8:], uint16(csumOffset))
}

// udpInfo locates the headers of a UDP datagram that may take part in coalescing (see
// ipInfo), with a UDP length that matches the packet and some payload.
func udpInfo(p []byte) (ipLen, payload int, ok bool) {
	ipLen = ipInfo(p, protoUDP)
	if ipLen == 0 || len(p) < ipLen+8 || int(binary.BigEndian.Uint16(p[ipLen+4:])) != len(p)-ipLen {
		return 0, 0, false
	}
	payload = len(p) - ipLen - 8
	return ipLen, payload, payload > 0
}

// UDPRun returns how many datagrams at the start of pkts can be coalesced into one UDP
// super-packet (USO): datagrams of one flow whose checksums verify, with the same IP
// header fields but for lengths and IPv4 IDs (see ipIDs), all of the first one's size
// but the last, which may be shorter. It returns 1 when no coalescing is possible.
// Each datagram's checksums are verified once, when it would join a run.
func UDPRun(pkts [][]byte) int {
	if len(pkts) < 2 {
		return 1
	}
	first := pkts[0]
	ipLen, size, ok := udpInfo(first)
	if !ok {
		return 1
	}
	var ids ipIDs
	total, n := len(first), 1
	for _, q := range pkts[1:] {
		qIP, qSize, ok := udpInfo(q)
		if !ok || qIP != ipLen || qSize > size || total+qSize > MaxCoalesced ||
			!sameIP(q, first, ipLen) || !bytes.Equal(q[ipLen:ipLen+4], first[ipLen:ipLen+4]) || !ids.follows(q, first, n) {
			break // another flow, or another IP header
		}
		if n == 1 && !verified(first, ipLen, protoUDP) {
			return 1
		}
		if !verified(q, ipLen, protoUDP) {
			break
		}
		n++
		total += qSize
		if qSize < size {
			break // a short datagram ends the run
		}
	}
	return n
}
