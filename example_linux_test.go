package wintun_test

import (
	"encoding/binary"
	"log"
	"net/netip"

	"go.wintun.dev/wintun"
)

// An adapter that answers ping, for every address of its network but its own. While it
// runs, `ping 10.6.8.2` and `ping fd00:6:8::2` (or any other address in 10.6.8.0/24 or
// fd00:6:8::/64 but the adapter's .1 and ::1, which the kernel answers itself) get
// replies built here: the program plays the hosts behind the adapter. It shows the ring
// calls, the wait loop that every Wintun program has, and a reply written in place
// into the send ring. It needs CAP_NET_ADMIN (root) and access to /dev/net/tun.
func Example() {
	adapter, err := wintun.CreateAdapter("ping0", "Example", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer adapter.Close() // removes the adapter
	for _, p := range []string{"10.6.8.1/24", "fd00:6:8::1/64"} {
		if err := adapter.AddAddress(netip.MustParsePrefix(p)); err != nil {
			log.Fatal(err)
		}
	}
	session, err := adapter.StartSession(0x400000) // two 4 MiB rings
	if err != nil {
		log.Fatal(err)
	}
	defer session.End()
	log.Printf("answering ping 10.6.8.2 and ping fd00:6:8::2 on %s", adapter.Name())
	for {
		packet, err := session.ReceivePacket()
		switch {
		case err == wintun.ErrNoMoreItems:
			if _, ok := <-session.ReadWaitEvent(); !ok {
				return // the session ended or the adapter is gone
			}
			continue
		case err != nil:
			log.Print(err) // an io.EOF error: the adapter is going away
			return
		}
		if isEchoRequest(packet) {
			// The reply has the request's length: build it where the kernel will read it.
			reply, err := session.AllocateSendPacket(len(packet))
			if err == nil {
				copy(reply, packet)
				makeEchoReply(reply)
				session.SendPacket(reply)
			} // else ErrBufferOverflow: drop the reply, as a busy host would
		}
		session.ReleaseReceivePacket(packet) // every received packet, answered or not
	}
}

// isEchoRequest reports whether p is an ICMP echo request (IPv4, type 8) or an ICMPv6
// echo request (IPv6 without extension headers, type 128).
func isEchoRequest(p []byte) bool {
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		ihl, total := int(p[0]&0x0f)*4, int(binary.BigEndian.Uint16(p[2:4]))
		return p[9] == 1 && ihl >= 20 && ihl+8 <= total && total <= len(p) && p[ihl] == 8
	case len(p) >= 48 && p[0]>>4 == 6:
		payload := int(binary.BigEndian.Uint16(p[4:6]))
		return p[6] == 58 && payload >= 8 && 40+payload <= len(p) && p[40] == 128
	}
	return false
}

// makeEchoReply turns an echo request, checked by isEchoRequest, into its reply in
// place: it swaps the source and destination addresses, sets the reply type and
// computes the ICMP checksum again. The IPv4 header checksum stays right: swapping two
// addresses does not change their sum.
func makeEchoReply(p []byte) {
	if p[0]>>4 == 4 {
		ihl := int(p[0]&0x0f) * 4
		swap(p[12:16], p[16:20])
		icmp := p[ihl:binary.BigEndian.Uint16(p[2:4])]
		icmp[0] = 0 // echo reply
		binary.BigEndian.PutUint16(icmp[2:4], 0)
		binary.BigEndian.PutUint16(icmp[2:4], checksum(icmp, 0))
		return
	}
	swap(p[8:24], p[24:40])
	icmp := p[40 : 40+int(binary.BigEndian.Uint16(p[4:6]))]
	icmp[0] = 129 // echo reply
	binary.BigEndian.PutUint16(icmp[2:4], 0)
	// ICMPv6 sums a pseudo-header too: both addresses, the length and next header 58.
	pseudo := sum(p[8:40], 0) + uint32(len(icmp)) + 58
	binary.BigEndian.PutUint16(icmp[2:4], checksum(icmp, pseudo))
}

func swap(a, b []byte) {
	for i := range a {
		a[i], b[i] = b[i], a[i]
	}
}

// sum adds b to s as big-endian 16-bit words, the first step of the Internet checksum.
func sum(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

// checksum returns the Internet checksum (RFC 1071) of b, starting from the sum s.
func checksum(b []byte, s uint32) uint16 {
	s = sum(b, s)
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
