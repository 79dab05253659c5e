package wintun_test

import (
	"log"

	"go.wintun.dev/wintun"
)

// A forwarder between two adapters that moves bundles of packets with the batch calls,
// on sessions that hand over TCP and UDP super-packets whole (WithGSO: each packet
// starts with its segmentation header, and nothing is split or coalesced on the way)
// and use io_uring where the kernel allows it. A full send ring drops what does not
// fit, as a network card would. (Compiled, not run: it needs CAP_NET_ADMIN.)
func ExampleSession_ReceivePackets() {
	start := func(name string) *wintun.Session {
		adapter, err := wintun.CreateAdapter(name, "Example", nil)
		if err != nil {
			log.Fatal(err)
		}
		session, err := adapter.StartSession(0x800000, wintun.WithGSO(), wintun.WithIOUring(true))
		if err != nil {
			log.Fatal(err)
		}
		return session
	}
	a, b := start("fwd0"), start("fwd1")
	go forwardBundles(b, a)
	forwardBundles(a, b)
}

func forwardBundles(from, to *wintun.Session) {
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
			return // the session ended or the adapter is gone
		}
		for i := range n {
			sizes[i] = len(in[i])
		}
		m, _ := to.AllocateSendPackets(sizes[:n], out) // m < n: the rest is dropped
		for i := range m {
			copy(out[i], in[i])
		}
		to.SendPackets(out[:m])
		from.ReleaseReceivePackets(in[:n])
	}
}
