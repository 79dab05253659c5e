// Package offload turns the super-packets that Linux hands to a tun device with
// IFF_VNET_HDR and TUNSETOFFLOAD into ordinary packets: TCP segmentation (TSO) and UDP
// segmentation (USO) are undone into MSS-sized packets with correct lengths, IDs,
// sequence numbers and checksums, and partial checksums are completed.
package offload

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// HeaderLen is the size of struct virtio_net_hdr.
const HeaderLen = 10

// virtio_net_hdr flags and GSO types (linux/virtio_net.h).
const (
	FlagNeedsCsum = 1
	GSONone       = 0
	GSOTCPv4      = 1
	GSOUDP        = 3 // UFO: whole IP fragments; never enabled by this library
	GSOTCPv6      = 4
	GSOUDPL4      = 5
	GSOECN        = 0x80
)

// Header is a virtio_net_hdr, in host byte order as the tun driver uses it.
type Header struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// ParseHeader decodes the first HeaderLen bytes of b.
func ParseHeader(b []byte) Header {
	_ = b[HeaderLen-1]
	return Header{
		Flags:      b[0],
		GSOType:    b[1],
		HdrLen:     binary.NativeEndian.Uint16(b[2:]),
		GSOSize:    binary.NativeEndian.Uint16(b[4:]),
		CsumStart:  binary.NativeEndian.Uint16(b[6:]),
		CsumOffset: binary.NativeEndian.Uint16(b[8:]),
	}
}

// ErrMalformed reports a super-packet whose header and contents disagree.
var ErrMalformed = errors.New("offload: malformed super-packet")

// Segments returns how many packets Split makes of pkt, and the size of the largest.
func Segments(pkt []byte, h Header) (n, maxSize int, err error) {
	if len(pkt) == 0 {
		return 0, 0, ErrMalformed
	}
	if h.GSOType&^GSOECN == GSONone {
		return 1, len(pkt), nil
	}
	hdrLen, _, _, err := headers(pkt, h)
	if err != nil {
		return 0, 0, err
	}
	payload := len(pkt) - hdrLen
	mss := int(h.GSOSize)
	n = (payload + mss - 1) / mss
	return n, hdrLen + min(mss, payload), nil
}

// headers validates a GSO packet and returns the length of its IP and L4 headers
// together, the offset of the L4 header (CsumStart: after IPv4 options or IPv6
// extension headers) and the L4 protocol, which the GSO type names.
func headers(pkt []byte, h Header) (hdrLen, l4 int, proto byte, err error) {
	if len(pkt) < 20 || h.GSOSize == 0 {
		return 0, 0, 0, ErrMalformed
	}
	l4 = int(h.CsumStart)
	switch pkt[0] >> 4 {
	case 4:
		if l4 != int(pkt[0]&0xf)*4 || l4 < 20 {
			return 0, 0, 0, ErrMalformed
		}
	case 6:
		if l4 < 40 {
			return 0, 0, 0, ErrMalformed
		}
	default:
		return 0, 0, 0, ErrMalformed
	}
	var csumOffset uint16
	switch h.GSOType &^ GSOECN {
	case GSOTCPv4, GSOTCPv6:
		if len(pkt) < l4+20 {
			return 0, 0, 0, ErrMalformed
		}
		hdrLen = l4 + int(pkt[l4+12]>>4)*4
		if hdrLen < l4+20 {
			return 0, 0, 0, ErrMalformed
		}
		proto, csumOffset = protoTCP, 16
	case GSOUDPL4:
		hdrLen = l4 + 8
		proto, csumOffset = protoUDP, 6
	default:
		return 0, 0, 0, ErrMalformed
	}
	// The partial checksum must sit where Split reads it; an L4 length beyond 16 bits
	// fits neither an IPv4 total length nor an IPv6 payload length.
	if len(pkt) <= hdrLen || len(pkt)-l4 > 0xffff || h.Flags&FlagNeedsCsum != 0 && h.CsumOffset != csumOffset {
		return 0, 0, 0, ErrMalformed
	}
	return hdrLen, l4, proto, nil
}

// Split writes the ordinary packets that the super-packet pkt (IP header first)
// stands for: for each, emit returns a buffer of the given size to fill, or nil to
// drop that packet. A packet that is not a super-packet is emitted once, with its
// partial checksum completed if the header says so. pkt may be modified.
func Split(pkt []byte, h Header, emit func(size int) []byte) error {
	if len(pkt) == 0 {
		return ErrMalformed // not a packet
	}
	if h.GSOType&^GSOECN == GSONone {
		if h.Flags&FlagNeedsCsum == 0 {
			if dst := emit(len(pkt)); dst != nil {
				copy(dst, pkt)
			}
			return nil
		}
		// CompleteChecksum and a copy in one pass: the checksum is summed while
		// copying and written into the copy.
		start, at, ok := checksumAt(pkt, h)
		if !ok {
			return ErrMalformed
		}
		if dst := emit(len(pkt)); dst != nil {
			copy(dst, pkt[:start])
			putChecksum(dst, start, at, Checksum(nil, copyChecksum(dst[start:], pkt[start:])))
		}
		return nil
	}
	hdrLen, l4, proto, err := headers(pkt, h)
	if err != nil {
		return err
	}
	v4 := pkt[0]>>4 == 4
	tcp := proto == protoTCP
	csumAt := l4 + 6
	if tcp {
		csumAt = l4 + 16
	}
	// base is the segments' common pseudo-header sum, without the L4 length. With
	// NEEDS_CSUM the kernel leaves in the checksum field the pseudo-header sum of the
	// whole super-packet, its L4 length included, as its own segmentation expects: the
	// sender built it with the destination it checksums for (the last address of an
	// IPv6 routing header or of an IPv4 source route, not the IP header's) and the
	// protocol after any extension header. Subtracting the length, in ones' complement,
	// leaves that base; the kernel's segmentation adjusts the field the same way.
	var base uint64
	if h.Flags&FlagNeedsCsum != 0 {
		base = uint64(binary.BigEndian.Uint16(pkt[csumAt:])) + uint64(^uint16(len(pkt)-l4))
	} else {
		// No partial sum to start from: the kernel's own segmentation then recomputes
		// it from the IP header's addresses, and so does this.
		base = pseudoHeaderSum(pkt, proto)
	}
	mss := int(h.GSOSize)
	payload := pkt[hdrLen:]
	// The segments' headers are the super-packet's but for a few fields, so their sums
	// start from the super-packet's, taken once from memory that is hot in the cache:
	// the old field values are subtracted by adding their complements (RFC 1624), each
	// segment's are added, and the checksum fields count as zero. Congruent nonzero
	// ones' complement sums fold to the same value, so the checksums are those of a
	// pass over the written headers, which would load what was just stored to memory
	// that is likely cold.
	var id uint16
	var ipSum uint64
	if v4 {
		id = binary.BigEndian.Uint16(pkt[4:])
		ipSum = uint64(^Checksum(pkt[:l4], 0)) + complement16(pkt[2:]) + complement16(pkt[4:]) + complement16(pkt[10:])
	}
	l4Sum := uint64(^Checksum(pkt[l4:hdrLen], 0)) + complement16(pkt[csumAt:])
	var seq uint32
	var flags byte
	if tcp {
		seq = binary.BigEndian.Uint32(pkt[l4+4:])
		flags = pkt[l4+13]
		l4Sum += complement16(pkt[l4+4:]) + complement16(pkt[l4+6:]) + uint64(^uint16(flags))
	} else {
		l4Sum += complement16(pkt[l4+4:])
	}
	for i, off := 0, 0; off < len(payload); i, off = i+1, off+mss {
		data := payload[off:min(off+mss, len(payload))]
		size := hdrLen + len(data)
		seg := emit(size)
		if seg == nil {
			continue
		}
		copy(seg, pkt[:hdrLen])
		// The payload is copied and summed in one pass; its sum joins the headers'
		// below.
		sum := base + l4Sum + sumAt(copyChecksum(seg[hdrLen:], data), hdrLen-l4)
		if v4 {
			binary.BigEndian.PutUint16(seg[2:], uint16(size))
			binary.BigEndian.PutUint16(seg[4:], id+uint16(i))
			binary.BigEndian.PutUint16(seg[10:], Checksum(nil, ipSum+uint64(uint16(size))+uint64(id+uint16(i))))
		} else {
			binary.BigEndian.PutUint16(seg[4:], uint16(size-40))
		}
		l4len := size - l4
		sum += uint64(l4len) // the pseudo-header's L4 length
		if tcp {
			s := seq + uint32(off)
			binary.BigEndian.PutUint32(seg[l4+4:], s)
			f := flags
			if off+mss < len(payload) {
				f &^= 0x01 | 0x08 // FIN and PSH only on the last segment
			}
			if i > 0 {
				f &^= 0x80 // CWR only on the first
			}
			seg[l4+13] = f
			sum += uint64(s>>16) + uint64(s&0xffff) + uint64(f)
		} else {
			binary.BigEndian.PutUint16(seg[l4+4:], uint16(l4len))
			sum += uint64(l4len) // the UDP header's length
		}
		c := Checksum(nil, sum)
		if c == 0 && !tcp {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(seg[csumAt:], c)
	}
	return nil
}

// CompleteChecksum finishes a partial checksum: the field at CsumStart+CsumOffset
// holds the pseudo-header sum; the checksum covers everything from CsumStart on.
func CompleteChecksum(pkt []byte, h Header) error {
	start, at, ok := checksumAt(pkt, h)
	if !ok {
		return ErrMalformed
	}
	putChecksum(pkt, start, at, Checksum(pkt[start:], 0))
	return nil
}

// checksumAt returns where the partial checksum of pkt starts and where it is stored,
// if both lie within pkt.
func checksumAt(pkt []byte, h Header) (start, at int, ok bool) {
	start, at = int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)
	return start, at, start < len(pkt) && at+2 <= len(pkt)
}

// putChecksum stores the checksum c, which covers pkt from start, at at.
func putChecksum(pkt []byte, start, at int, c uint16) {
	if c == 0 && at == start+6 { // UDP sends zero as all ones
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[at:], c)
}

// complement16 is the ones' complement of the big-endian word at the start of b:
// added to a sum, it subtracts that word.
func complement16(b []byte) uint64 {
	return uint64(^binary.BigEndian.Uint16(b))
}

// L4 protocol numbers.
const (
	protoTCP = 6
	protoUDP = 17
)

// pseudoHeaderSum is the unfolded sum of the IPv4 or IPv6 pseudo-header of pkt for
// protocol proto, without the L4 length, taking the addresses from the IP header.
func pseudoHeaderSum(pkt []byte, proto byte) uint64 {
	var addrs []byte
	if pkt[0]>>4 == 4 {
		addrs = pkt[12:20]
	} else {
		addrs = pkt[8:40]
	}
	sum := uint64(proto)
	for i := 0; i < len(addrs); i += 4 {
		sum += uint64(binary.BigEndian.Uint32(addrs[i:]))
	}
	return sum
}

// Checksum is the Internet checksum of b added to the unfolded partial sum sum.
//
// A ones' complement sum does not depend on byte order (RFC 1071), so b is summed as
// little-endian 64-bit words with the carries added back, which takes an eighth of
// the additions of a 16-bit loop and no byte swaps; the folded result's two bytes are
// swapped once at the end. With AVX2, long inputs are summed by a vector loop first.
func Checksum(b []byte, sum uint64) uint16 {
	var s, c uint64
	for useAVX2 && len(b) >= vectorSum {
		// Chunks of at most 1 GiB keep the vector loop's sum within 64 bits.
		n := min(len(b), 1<<30) &^ 63
		s, c = bits.Add64(s, sumAVX2(&b[0], n), c)
		b = b[n:]
	}
	for len(b) >= 64 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[0:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[24:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[32:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[40:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[48:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[56:]), c)
		b = b[64:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b), c)
		b = b[8:]
	}
	sum += uint64(bits.ReverseBytes16(finish(s, c, b)))
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// vectorSum is the length from which Checksum calls sumAVX2: below it, the call and
// the reduction of the vector sum cost more than the scalar loop.
const vectorSum = 256

// finish adds to the sum of little-endian words s, with its last carry c, the short
// tail b (under 8 bytes) and folds it all into 16 bits, still little-endian.
func finish(s, c uint64, b []byte) uint16 {
	// Fold the 64-bit sum and its last carry into 32 bits before the short tail.
	s = s>>32 + s&0xffffffff + c
	if len(b) >= 4 {
		s += uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		s += uint64(binary.LittleEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) // the high byte of a big-endian word is the low byte here
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// sumAt returns the partial sum sum (at most 0xffff, as copyChecksum returns) of data
// that starts off bytes into the data it is part of. Words pair bytes from even
// offsets, so data from an odd offset has its sum's bytes swapped. TCP's and UDP's
// headers are of even length, so Split's payloads never need it, but the sum stays
// right if that changes.
func sumAt(sum uint64, off int) uint64 {
	if off%2 != 0 {
		return uint64(bits.ReverseBytes16(uint16(sum)))
	}
	return sum
}

// copyChecksum copies src into dst, which must be at least as long, and returns the
// ones' complement sum of src as a partial sum for Checksum: Checksum(nil,
// sum+copyChecksum(dst, src)) equals Checksum(src, sum). Splitting reads each
// segment's payload once this way, to copy and to sum it, where copy and Checksum read
// it twice. The sum is that of big-endian words from src's first byte: a chunk that
// starts at an odd offset of the data it is part of needs its sum's bytes swapped.
func copyChecksum(dst, src []byte) uint64 {
	dst = dst[:len(src)]
	var s, c uint64
	if n := len(src) &^ 63; useAVX2 && n > 0 {
		s = copySumAVX2(&dst[0], &src[0], n)
		src, dst = src[n:], dst[n:]
	}
	for len(src) >= 64 {
		// Each word is stored and added as soon as it is loaded, which keeps one
		// word live at a time and all of them in registers.
		d, b := dst[:64:64], src[:64:64]
		w := binary.LittleEndian.Uint64(b[0:])
		binary.LittleEndian.PutUint64(d[0:], w)
		s, c = bits.Add64(s, w, c)
		w = binary.LittleEndian.Uint64(b[8:])
		binary.LittleEndian.PutUint64(d[8:], w)
		s, c = bits.Add64(s, w, c)
		w = binary.LittleEndian.Uint64(b[16:])
		binary.LittleEndian.PutUint64(d[16:], w)
		s, c = bits.Add64(s, w, c)
		w = binary.LittleEndian.Uint64(b[24:])
		binary.LittleEndian.PutUint64(d[24:], w)
		s, c = bits.Add64(s, w, c)
		w = binary.LittleEndian.Uint64(b[32:])
		binary.LittleEndian.PutUint64(d[32:], w)
		s, c = bits.Add64(s, w, c)
		w = binary.LittleEndian.Uint64(b[40:])
		binary.LittleEndian.PutUint64(d[40:], w)
		s, c = bits.Add64(s, w, c)
		w = binary.LittleEndian.Uint64(b[48:])
		binary.LittleEndian.PutUint64(d[48:], w)
		s, c = bits.Add64(s, w, c)
		w = binary.LittleEndian.Uint64(b[56:])
		binary.LittleEndian.PutUint64(d[56:], w)
		s, c = bits.Add64(s, w, c)
		src, dst = src[64:], dst[64:]
	}
	for len(src) >= 8 {
		w := binary.LittleEndian.Uint64(src)
		binary.LittleEndian.PutUint64(dst, w)
		s, c = bits.Add64(s, w, c)
		src, dst = src[8:], dst[8:]
	}
	copy(dst, src)
	return uint64(bits.ReverseBytes16(finish(s, c, src)))
}
