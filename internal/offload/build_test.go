package offload

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"go.wintun.dev/wintun/internal/packet"
)

// This file builds packets the way a sender's kernel does, with IPv4 options and IPv6
// extension headers, and verifies checksums independently of the code under test: the
// pseudo-header is computed from scratch (with internal/packet's checksum) for the
// destination the sender checksums for, which a routing header or a source route
// option moves out of the IP header.

// ext is an IPv6 extension header, or with typ ipv4Options the options of an IPv4
// header.
type ext struct {
	typ  byte   // 0 hop-by-hop, 43 routing, 60 destination options, or ipv4Options
	data []byte // the whole header; for IPv6 its first byte (next header) is filled in
}

const ipv4Options = 0xff

// hopByHop is a hop-by-hop options header of n bytes (a multiple of 8) holding one PadN.
func hopByHop(n int) ext { return ext{0, padN(n)} }

// dstOpts is a destination options header of n bytes (a multiple of 8) holding one PadN.
func dstOpts(n int) ext { return ext{60, padN(n)} }

func padN(n int) []byte {
	h := make([]byte, n)
	h[1] = byte(n/8 - 1)
	h[2], h[3] = 1, byte(n-4) // PadN over the rest
	return h
}

// routing is a routing header of the given type listing addrs, all still to visit; it
// returns the destination a sender checksums for: the last address for types 0 and 2,
// the first (segments are listed in reverse) for a segment routing header (type 4).
func routing(typ byte, addrs ...netip.Addr) (ext, netip.Addr) {
	h := make([]byte, 8, 8+16*len(addrs))
	h[1] = byte(2 * len(addrs))
	h[2] = typ
	h[3] = byte(len(addrs)) // segments left
	final := addrs[len(addrs)-1]
	if typ == 4 {
		h[3] = byte(len(addrs) - 1)
		h[4] = byte(len(addrs) - 1) // last entry
		final = addrs[0]
	}
	for _, a := range addrs {
		h = append(h, a.AsSlice()...)
	}
	return ext{43, h}, final
}

// sourceRoute is an IPv4 loose source route option listing addrs, padded to a
// multiple of 4 bytes; a sender checksums for the last address.
func sourceRoute(addrs ...netip.Addr) (ext, netip.Addr) {
	o := []byte{131, byte(3 + 4*len(addrs)), 4}
	for _, a := range addrs {
		o = append(o, a.AsSlice()...)
	}
	for len(o)%4 != 0 {
		o = append(o, 0) // end of options
	}
	return ext{ipv4Options, o}, addrs[len(addrs)-1]
}

// nops is n bytes of IPv4 no-operation options (n a multiple of 4).
func nops(n int) ext {
	o := make([]byte, n)
	for i := range o {
		o[i] = 1
	}
	return ext{ipv4Options, o}
}

// ipPacket wraps l4 (an L4 header and payload) in an IPv4 or IPv6 header from src to
// dst carrying exts; it returns the packet and the offset of l4 in it. IPv4 packets
// have DF set and the given ID.
func ipPacket(src, dst netip.Addr, id uint16, proto byte, exts []ext, l4 []byte) ([]byte, int) {
	var p []byte
	if src.Is4() {
		var opts []byte
		for _, e := range exts {
			opts = append(opts, e.data...)
		}
		hl := 20 + len(opts)
		p = make([]byte, hl, hl+len(l4))
		p[0] = 0x40 | byte(hl/4)
		binary.BigEndian.PutUint16(p[2:], uint16(hl+len(l4)))
		binary.BigEndian.PutUint16(p[4:], id)
		p[6] = 0x40
		p[8] = 64
		p[9] = proto
		copy(p[12:], src.AsSlice())
		copy(p[16:], dst.AsSlice())
		copy(p[20:], opts)
		binary.BigEndian.PutUint16(p[10:], packet.Checksum(p[:hl], 0))
	} else {
		p = make([]byte, 40, 40+len(l4))
		p[0] = 0x60
		p[7] = 64
		copy(p[8:], src.AsSlice())
		copy(p[24:], dst.AsSlice())
		next := &p[6]
		for _, e := range exts {
			*next = e.typ
			p = append(p, e.data...)
			next = &p[len(p)-len(e.data)]
		}
		*next = proto
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40+len(l4)))
	}
	off := len(p)
	return append(p, l4...), off
}

// pseudo is the pseudo-header sum for src, the checksummed destination final,
// protocol proto and L4 length n.
func pseudo(src, final netip.Addr, proto byte, n int) uint32 {
	var sum uint32
	for _, a := range [][]byte{src.AsSlice(), final.AsSlice()} {
		for i := 0; i < len(a); i += 2 {
			sum += uint32(a[i])<<8 | uint32(a[i+1])
		}
	}
	return sum + uint32(proto) + uint32(n)
}

// withPartial stores in the L4 checksum field of p (L4 header at l4) the folded
// pseudo-header sum, not complemented, as Linux leaves it for CHECKSUM_PARTIAL.
func withPartial(p []byte, l4 int, proto byte, src, final netip.Addr) {
	at := l4 + csumOffsetOf(proto)
	binary.BigEndian.PutUint16(p[at:], ^packet.Checksum(nil, pseudo(src, final, proto, len(p)-l4)))
}

// withChecksum fills in the L4 checksum of p (L4 header at l4) in full.
func withChecksum(p []byte, l4 int, proto byte, src, final netip.Addr) {
	at := l4 + csumOffsetOf(proto)
	p[at], p[at+1] = 0, 0
	c := packet.Checksum(p[l4:], pseudo(src, final, proto, len(p)-l4))
	if c == 0 && proto == protoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(p[at:], c)
}

func csumOffsetOf(proto byte) int {
	if proto == protoTCP {
		return 16
	}
	return 6
}

// checkSegment verifies an emitted packet whose L4 header is at l4: IP length fields,
// the IPv4 header checksum and the L4 checksum for the checksummed destination final.
func checkSegment(seg []byte, l4 int, proto byte, src, final netip.Addr) error {
	if src.Is4() {
		if int(binary.BigEndian.Uint16(seg[2:])) != len(seg) {
			return fmt.Errorf("IPv4 total length %d for %d bytes", binary.BigEndian.Uint16(seg[2:]), len(seg))
		}
		if packet.Checksum(seg[:int(seg[0]&0xf)*4], 0) != 0 {
			return fmt.Errorf("bad IPv4 header checksum")
		}
	} else if int(binary.BigEndian.Uint16(seg[4:])) != len(seg)-40 {
		return fmt.Errorf("IPv6 payload length %d for %d bytes", binary.BigEndian.Uint16(seg[4:]), len(seg))
	}
	if proto == protoUDP {
		if int(binary.BigEndian.Uint16(seg[l4+4:])) != len(seg)-l4 {
			return fmt.Errorf("UDP length %d for %d bytes", binary.BigEndian.Uint16(seg[l4+4:]), len(seg)-l4)
		}
		if binary.BigEndian.Uint16(seg[l4+6:]) == 0 {
			return fmt.Errorf("UDP checksum zero (none)")
		}
	}
	if c := packet.Checksum(seg[l4:], pseudo(src, final, proto, len(seg)-l4)); c != 0 {
		return fmt.Errorf("bad L4 checksum %#04x (protocol %d, %d bytes, destination %v)",
			binary.BigEndian.Uint16(seg[l4+csumOffsetOf(proto):]), proto, len(seg), final)
	}
	return nil
}

// l4Header is a TCP header (seq, flags) or a UDP header (ports, length) followed by
// payload, with a zero checksum.
func l4Header(proto byte, seq uint32, flags byte, payload []byte) []byte {
	if proto == protoTCP {
		return tcpSegment(seq, flags, payload)
	}
	u := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], 5000)
	binary.BigEndian.PutUint16(u[2:], 6000)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	return append(u, payload...)
}

// superPacket builds a super-packet as Linux hands it to a tun device with
// IFF_VNET_HDR: headers with exts, payload, a partial checksum for final, and the
// virtio_net_hdr describing it with segments of mss bytes.
func superPacket(src, dst, final netip.Addr, exts []ext, proto byte, payload []byte, mss int) ([]byte, Header) {
	p, l4 := ipPacket(src, dst, 100, proto, exts, l4Header(proto, 1000, tcpACK|tcpPSH, payload))
	withPartial(p, l4, proto, src, final)
	h := Header{Flags: FlagNeedsCsum, GSOSize: uint16(mss), CsumStart: uint16(l4), CsumOffset: uint16(csumOffsetOf(proto))}
	switch {
	case proto == protoUDP:
		h.GSOType = GSOUDPL4
	case src.Is4():
		h.GSOType = GSOTCPv4
	default:
		h.GSOType = GSOTCPv6
	}
	return p, h
}
