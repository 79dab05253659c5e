package packet

import (
	"bytes"
	"net/netip"
	"testing"
	"unsafe"
)

// FuzzParse feeds Parse arbitrary bytes: it must never panic, and what it returns must
// describe p: a payload inside p, addresses of the packet's family, and echo replies
// that parse back.
func FuzzParse(f *testing.F) {
	a4, b4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a6, b6 := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	f.Add(Echo(a4, b4, EchoRequest4, 1, 2, []byte("ping")))
	f.Add(Echo(a6, b6, EchoRequest6, 1, 2, nil))
	f.Add(IP(a4, b4, ProtoUDP, []byte{0, 53, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4}))
	f.Add(IP(a6, b6, ProtoUDP, []byte{0, 53, 0, 53, 0, 8, 0, 0}))
	f.Add(IP(a4, b4, ProtoTCP, make([]byte, 20)))
	f.Add([]byte{0x4f, 0, 0, 20})
	f.Add([]byte{0x45, 0, 0xff, 0xff})
	f.Add([]byte{0x60})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		orig := bytes.Clone(p)
		in, err := Parse(p)
		if !bytes.Equal(p, orig) {
			t.Fatal("Parse modified its input")
		}
		_ = in.String()
		if err != nil {
			return
		}
		if in.Version != 4 && in.Version != 6 || in.Src.Is4() != (in.Version == 4) || in.Dst.Is4() != (in.Version == 4) {
			t.Fatalf("version %d with addresses %v, %v", in.Version, in.Src, in.Dst)
		}
		if len(in.Payload) > 0 {
			base, pl := uintptr(unsafe.Pointer(&p[0])), uintptr(unsafe.Pointer(&in.Payload[0]))
			if pl < base || pl+uintptr(len(in.Payload)) > base+uintptr(len(p)) {
				t.Fatalf("payload of %d bytes outside the %d-byte packet", len(in.Payload), len(p))
			}
		}
		if in.IsEchoRequest() {
			r, err := Parse(in.Reply())
			if err != nil || !r.IsEchoReply() || r.ID != in.ID || r.Seq != in.Seq || r.Src != in.Dst || r.Dst != in.Src {
				t.Fatalf("reply to %v parses as %v, %v", in, r, err)
			}
			if Checksum(r.Payload, 0) != 0 && in.Version == 4 {
				t.Fatalf("ICMP checksum of the reply to %v is wrong", in)
			}
		}
	})
}
