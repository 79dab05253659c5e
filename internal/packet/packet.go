// Package packet builds and reads the few IP packets that the demo and the tests
// exchange with the kernel: ICMP echo over IPv4 and IPv6, and UDP.
package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// IP protocol numbers.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// ICMP echo types.
const (
	EchoRequest4 = 8
	EchoReply4   = 0
	EchoRequest6 = 128
	EchoReply6   = 129
)

// Checksum returns the Internet checksum of b, starting from the partial sum sum.
func Checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func pseudoSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	var sum uint32
	for _, a := range [][]byte{src.AsSlice(), dst.AsSlice()} {
		for i := 0; i < len(a); i += 2 {
			sum += uint32(a[i])<<8 | uint32(a[i+1])
		}
	}
	return sum + uint32(proto) + uint32(length)
}

// IP wraps an upper-layer payload in an IPv4 or IPv6 header (by the family of src and
// dst) and fills in the ICMP, ICMPv6 or UDP checksum of payload.
func IP(src, dst netip.Addr, proto uint8, payload []byte) []byte {
	l4 := append([]byte(nil), payload...)
	csumAt := -1
	switch proto {
	case ProtoICMP, ProtoICMPv6:
		csumAt = 2
	case ProtoUDP:
		csumAt = 6
	case ProtoTCP:
		csumAt = 16
	}
	if csumAt >= 0 && len(l4) >= csumAt+2 {
		l4[csumAt], l4[csumAt+1] = 0, 0
		var sum uint32
		if proto != ProtoICMP {
			sum = pseudoSum(src, dst, proto, len(l4))
		}
		c := Checksum(l4, sum)
		if c == 0 && proto == ProtoUDP {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[csumAt:], c)
	}
	if src.Is4() {
		h := make([]byte, 20, 20+len(l4))
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
		h[8] = 64
		h[9] = proto
		copy(h[12:16], src.AsSlice())
		copy(h[16:20], dst.AsSlice())
		binary.BigEndian.PutUint16(h[10:], Checksum(h, 0))
		return append(h, l4...)
	}
	h := make([]byte, 40, 40+len(l4))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6] = proto
	h[7] = 64
	copy(h[8:24], src.AsSlice())
	copy(h[24:40], dst.AsSlice())
	return append(h, l4...)
}

// Echo builds an ICMP (IPv4) or ICMPv6 echo message of the given type.
func Echo(src, dst netip.Addr, typ uint8, id, seq uint16, data []byte) []byte {
	m := make([]byte, 8, 8+len(data))
	m[0] = typ
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	m = append(m, data...)
	if src.Is4() {
		return IP(src, dst, ProtoICMP, m)
	}
	return IP(src, dst, ProtoICMPv6, m)
}

// Info is what Parse reads from a packet.
type Info struct {
	Version  int
	Proto    uint8
	Src, Dst netip.Addr
	Payload  []byte // the upper-layer message
	// For ICMP and ICMPv6 echo messages:
	ICMPType uint8
	ID, Seq  uint16
	// For UDP:
	SrcPort, DstPort uint16
}

// ErrShort reports a packet too short for its headers.
var ErrShort = errors.New("packet: truncated")

// Parse reads the IP header of p (no IPv6 extension headers) and the ICMP or UDP
// header after it.
func Parse(p []byte) (Info, error) {
	var in Info
	if len(p) < 1 {
		return in, ErrShort
	}
	switch in.Version = int(p[0] >> 4); in.Version {
	case 4:
		if len(p) < 20 {
			return in, ErrShort
		}
		ihl := int(p[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(p[2:]))
		if ihl < 20 || total < ihl || total > len(p) {
			return in, ErrShort
		}
		in.Proto = p[9]
		in.Src = netip.AddrFrom4([4]byte(p[12:16]))
		in.Dst = netip.AddrFrom4([4]byte(p[16:20]))
		in.Payload = p[ihl:total]
	case 6:
		if len(p) < 40 {
			return in, ErrShort
		}
		total := 40 + int(binary.BigEndian.Uint16(p[4:]))
		if total > len(p) {
			return in, ErrShort
		}
		in.Proto = p[6]
		in.Src = netip.AddrFrom16([16]byte(p[8:24]))
		in.Dst = netip.AddrFrom16([16]byte(p[24:40]))
		in.Payload = p[40:total]
	default:
		return in, fmt.Errorf("packet: IP version %d", in.Version)
	}
	switch in.Proto {
	case ProtoICMP, ProtoICMPv6:
		if len(in.Payload) >= 8 {
			in.ICMPType = in.Payload[0]
			in.ID = binary.BigEndian.Uint16(in.Payload[4:])
			in.Seq = binary.BigEndian.Uint16(in.Payload[6:])
		}
	case ProtoUDP:
		if len(in.Payload) >= 8 {
			in.SrcPort = binary.BigEndian.Uint16(in.Payload[0:])
			in.DstPort = binary.BigEndian.Uint16(in.Payload[2:])
		}
	}
	return in, nil
}

// IsEchoRequest reports whether the packet is an ICMP or ICMPv6 echo request.
func (in Info) IsEchoRequest() bool {
	return in.Proto == ProtoICMP && in.ICMPType == EchoRequest4 && len(in.Payload) >= 8 ||
		in.Proto == ProtoICMPv6 && in.ICMPType == EchoRequest6 && len(in.Payload) >= 8
}

// IsEchoReply reports whether the packet is an ICMP or ICMPv6 echo reply.
func (in Info) IsEchoReply() bool {
	return in.Proto == ProtoICMP && in.ICMPType == EchoReply4 && len(in.Payload) >= 8 ||
		in.Proto == ProtoICMPv6 && in.ICMPType == EchoReply6 && len(in.Payload) >= 8
}

// Reply builds the echo reply to an echo request.
func (in Info) Reply() []byte {
	typ := uint8(EchoReply4)
	if in.Version == 6 {
		typ = EchoReply6
	}
	return Echo(in.Dst, in.Src, typ, in.ID, in.Seq, in.Payload[8:])
}

// String describes the packet in one line: version, protocol, source, destination.
func (in Info) String() string {
	proto := fmt.Sprintf("proto %d", in.Proto)
	switch in.Proto {
	case ProtoICMP:
		proto = "ICMP"
	case ProtoICMPv6:
		proto = "ICMPv6"
	case ProtoTCP:
		proto = "TCP"
	case ProtoUDP:
		proto = "UDP"
	}
	s := fmt.Sprintf("IPv%d %s %v -> %v", in.Version, proto, in.Src, in.Dst)
	switch {
	case in.IsEchoRequest():
		s += fmt.Sprintf(" echo request id=%d seq=%d", in.ID, in.Seq)
	case in.IsEchoReply():
		s += fmt.Sprintf(" echo reply id=%d seq=%d", in.ID, in.Seq)
	case in.Proto == ProtoICMP || in.Proto == ProtoICMPv6:
		s += fmt.Sprintf(" type %d", in.ICMPType)
	case in.Proto == ProtoUDP:
		s = fmt.Sprintf("IPv%d UDP %v -> %v", in.Version,
			netip.AddrPortFrom(in.Src, in.SrcPort), netip.AddrPortFrom(in.Dst, in.DstPort))
	}
	return s
}
