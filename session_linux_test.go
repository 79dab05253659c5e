package wintun_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"
)

func TestEchoThroughKernel(t *testing.T) {
	ns := netns.ForTest(t)
	_, s := nsAdapter(t, ns, "wtecho", wintun.RingCapacityMin, "10.200.0.1/24", "fd00:200::1/64")
	for _, c := range []struct{ local, remote string }{
		{"10.200.0.2", "10.200.0.1"},
		{"fd00:200::2", "fd00:200::1"},
	} {
		local, remote := netip.MustParseAddr(c.local), netip.MustParseAddr(c.remote)
		typ := uint8(packet.EchoRequest4)
		if local.Is6() {
			typ = packet.EchoRequest6
		}
		data := []byte("wintun echo " + c.remote)
		send(t, s, packet.Echo(local, remote, typ, 0x1234, 7, data))
		in := receive(t, s, 5*time.Second, func(in packet.Info) bool { return in.IsEchoReply() })
		if in.Src != remote || in.Dst != local || in.ID != 0x1234 || in.Seq != 7 || !bytes.Equal(in.Payload[8:], data) {
			t.Errorf("reply %v: want from %v to %v, id 0x1234 seq 7 data %q; got data %q", in, remote, local, data, in.Payload[8:])
		}
	}
}
