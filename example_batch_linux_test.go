package wintun_test

import (
	"log"

	"go.wintun.dev/wintun"
)

// A forwarder between two adapters, fwd0 and fwd1: every packet the system sends
// through one is received by the system on the other. Put each adapter in a network
// namespace of its own and the two namespaces reach each other through this program,
// as through a cable. With namespaces a and b, once the program runs:
//
//	ip link set fwd0 netns a; ip -n a addr add 10.6.10.1/24 dev fwd0; ip -n a link set fwd0 up
//	ip link set fwd1 netns b; ip -n b addr add 10.6.10.2/24 dev fwd1; ip -n b link set fwd1 up
//	ip netns exec a ping 10.6.10.2
//
// (Sessions keep running when their adapter moves.) It moves bundles of packets with
// the batch calls, on sessions that hand over TCP and UDP super-packets whole
// (WithGSO: each packet starts with its segmentation header, and nothing is split or
// coalesced on the way) and use io_uring where the kernel allows it. A full send ring
// drops what does not fit, as a network card would. It needs CAP_NET_ADMIN (root) and
// access to /dev/net/tun.
func ExampleSession_ReceivePackets() {
	start := func(name string) (*wintun.Adapter, *wintun.Session) {
		adapter, err := wintun.CreateAdapter(name, "Example", nil)
		if err != nil {
			log.Fatal(err)
		}
		session, err := adapter.StartSession(0x800000, wintun.WithGSO(), wintun.WithIOUring(true))
		if err != nil {
			log.Fatal(err)
		}
		return adapter, session
	}
	adapterA, a := start("fwd0")
	defer adapterA.Close() // removes the adapter and ends its session
	adapterB, b := start("fwd1")
	defer adapterB.Close()
	log.Print("forwarding between fwd0 and fwd1")
	go forwardBundles(b, a)
	forwardBundles(a, b) // until an adapter is deleted
}

// forwardBundles copies every packet received on from to to, a bundle at a time,
// until either session ends; it then ends both, so that the other direction stops too.
func forwardBundles(from, to *wintun.Session) {
	defer from.End()
	defer to.End()
	in, out := make([][]byte, 128), make([][]byte, 128)
	sizes := make([]int, 128)
	for {
		n, err := from.ReceivePackets(in)
		switch {
		case err == wintun.ErrNoMoreItems:
			if _, ok := <-from.ReadWaitEvent(); !ok {
				return
			}
			continue
		case err != nil:
			log.Print(err) // the session ended or the adapter is gone
			return
		}
		for i := range n {
			sizes[i] = len(in[i])
		}
		m, err := to.AllocateSendPackets(sizes[:n], out)
		if err != nil && err != wintun.ErrBufferOverflow { // m < n and a full ring: the rest is dropped
			log.Print(err) // the other session ended or its adapter is gone
			from.ReleaseReceivePackets(in[:n])
			return
		}
		for i := range m {
			copy(out[i], in[i])
		}
		to.SendPackets(out[:m])
		from.ReleaseReceivePackets(in[:n])
	}
}
