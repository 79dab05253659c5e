package wintun_test

import (
	"log"
	"net/netip"

	"go.wintun.dev/wintun"
)

// A program that answers every packet it receives by sending it back: it shows the
// ring calls and the wait loop that every Wintun program has. (Compiled, not run: it
// needs CAP_NET_ADMIN.)
func Example() {
	adapter, err := wintun.CreateAdapter("echo0", "Example", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer adapter.Close() // removes the adapter
	if err := adapter.AddAddress(netip.MustParsePrefix("10.6.7.7/24")); err != nil {
		log.Fatal(err)
	}
	session, err := adapter.StartSession(0x400000) // 4 MiB rings
	if err != nil {
		log.Fatal(err)
	}
	defer session.End()
	for {
		packet, err := session.ReceivePacket()
		switch {
		case err == wintun.ErrNoMoreItems:
			if _, ok := <-session.ReadWaitEvent(); !ok {
				return // session ended or adapter gone
			}
			continue
		case err != nil:
			log.Fatal(err) // io.EOF errors: the adapter is going away
		}
		if out, err := session.AllocateSendPacket(len(packet)); err == nil {
			copy(out, packet)
			session.SendPacket(out)
		} // else ErrBufferOverflow: drop it, as a network card would
		session.ReleaseReceivePacket(packet)
	}
}
