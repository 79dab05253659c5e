//go:build linux

package netns

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Ping sends ICMP or ICMPv6 echo requests to dst from inside ns, from src (or, if src
// is the zero Addr, from the address the kernel picks), once a second, until the
// matching reply arrives from dst or timeout passes. It needs no ping program.
func Ping(ns *NS, src, dst netip.Addr, timeout time.Duration) error {
	network, proto := "ip4:icmp", 1
	var request, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, proto, request, reply = "ip6:ipv6-icmp", 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	local := ""
	if src.IsValid() {
		local = src.String()
	}
	var c *icmp.PacketConn
	if err := ns.Do(func() (err error) {
		c, err = icmp.ListenPacket(network, local)
		return err
	}); err != nil {
		return fmt.Errorf("ping %v: %w", dst, err)
	}
	defer c.Close()
	id, data := rand.IntN(0xffff), []byte("ping "+dst.String())
	buf := make([]byte, 1500)
	for seq, deadline := 1, time.Now().Add(timeout); time.Now().Before(deadline); seq++ {
		// The kernel fills in the ICMPv6 checksum.
		b, err := (&icmp.Message{Type: request, Body: &icmp.Echo{ID: id, Seq: seq, Data: data}}).Marshal(nil)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return fmt.Errorf("ping %v: %w", dst, err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break // no reply within the second: send the next request
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != reply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq && bytes.Equal(e.Data, data) &&
				from.(*net.IPAddr).IP.Equal(dst.AsSlice()) {
				return nil
			}
		}
	}
	return fmt.Errorf("ping %v: no reply within %v", dst, timeout)
}
