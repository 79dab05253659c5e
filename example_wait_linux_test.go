package wintun_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"time"

	"go.wintun.dev/wintun"
)

// Waiting for packets and for a context at once: nextPacket returns when a packet
// arrives, when the context is done, or when the session ends. The program prints a
// line for each packet the system sends through the adapter (`ping 10.6.9.2` shows the
// requests; nobody answers them) and stops on Ctrl+C or after a minute. It needs
// CAP_NET_ADMIN (root) and access to /dev/net/tun.
func ExampleSession_ReadWaitEvent() {
	adapter, err := wintun.CreateAdapter("wait0", "Example", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer adapter.Close()
	if err := adapter.AddAddress(netip.MustParsePrefix("10.6.9.1/24")); err != nil {
		log.Fatal(err)
	}
	session, err := adapter.StartSession(wintun.RingCapacityMin)
	if err != nil {
		log.Fatal(err)
	}
	defer session.End()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		packet, err := nextPacket(ctx, session)
		if err != nil {
			fmt.Println("stopped:", err) // the context's error, or an io.EOF error
			return
		}
		if src, dst, ok := addresses(packet); ok {
			fmt.Printf("%d bytes from %v to %v\n", len(packet), src, dst)
		}
		session.ReleaseReceivePacket(packet)
	}
}

// nextPacket returns the next packet the system sent through the adapter, waiting
// for one if need be, unless ctx is done first.
func nextPacket(ctx context.Context, s *wintun.Session) ([]byte, error) {
	for {
		packet, err := s.ReceivePacket()
		if !errors.Is(err, wintun.ErrNoMoreItems) {
			return packet, err // a packet, or the end of the session
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.ReadWaitEvent():
			// A packet arrived, or the channel was closed because the session ended:
			// ReceivePacket now says which.
		}
	}
}

// addresses returns the source and destination of an IPv4 or IPv6 packet.
func addresses(p []byte) (src, dst netip.Addr, ok bool) {
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		return netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20])), true
	case len(p) >= 40 && p[0]>>4 == 6:
		return netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40])), true
	}
	return netip.Addr{}, netip.Addr{}, false
}
