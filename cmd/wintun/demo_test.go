//go:build linux

package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/vishvananda/netlink"
	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"
	"go.wintun.dev/wintun/internal/pcap"
	"golang.org/x/sys/unix"
)

// syncBuffer is an io.Writer safe for the demo and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pingFrom sends one echo request to dst with a raw socket of the namespace and waits
// for the reply.
func pingFrom(ns *netns.NS, dst netip.Addr) error {
	return ns.Do(func() error {
		family, proto, hdr := unix.AF_INET, unix.IPPROTO_ICMP, 20
		src := netip.MustParseAddr("10.6.7.7")
		typ := uint8(packet.EchoRequest4)
		if dst.Is6() {
			family, proto, hdr = unix.AF_INET6, unix.IPPROTO_ICMPV6, 40
			src = netip.MustParseAddr("fd00:6:7::7")
			typ = packet.EchoRequest6
		}
		fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 3})
		msg := packet.Echo(src, dst, typ, 4242, 1, []byte("ping"))[hdr:]
		var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: dst.As16()}
		if dst.Is4() {
			sa = &unix.SockaddrInet4{Addr: dst.As4()}
		}
		if err := unix.Sendto(fd, msg, 0, sa); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err == unix.EINTR { // the Go runtime's preemption signals
				continue
			}
			if err != nil {
				return err
			}
			m := buf[:n]
			if !dst.Is6() {
				m = m[int(m[0]&0xf)*4:] // IPv4 raw sockets return the IP header
			}
			if len(m) >= 8 && (m[0] == packet.EchoReply4 && !dst.Is6() || m[0] == packet.EchoReply6 && dst.Is6()) &&
				m[4] == 4242>>8 && m[5] == 4242&0xff {
				return nil
			}
		}
	})
}

func TestDemo(t *testing.T) {
	ns := netns.ForTest(t)
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- ns.Do(func() error { return runDemo(&out, 4, 15*time.Second, make(chan os.Signal)) })
	}()
	// Wait for the adapter, then ping the host the demo plays, over IPv4 and IPv6.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var up bool
		ns.Do(func() error {
			l, err := netlink.LinkByName("demo")
			up = err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
			return nil
		})
		if up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("adapter demo not up after 5s; output:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, dst := range []string{"10.6.7.8", "fd00:6:7::8"} {
		if err := pingFrom(ns, netip.MustParseAddr(dst)); err != nil {
			t.Errorf("ping %s: %v", dst, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("demo: %v; output:\n%s", err, out.String())
	}
	o := out.String()
	for _, want := range []string{
		"IPv4 ICMP 10.6.7.7 -> 10.6.7.8 echo reply",
		"IPv4 ICMP 10.6.7.7 -> 10.6.7.8 echo request id=4242",
		"IPv6 ICMPv6 fd00:6:7::7 -> fd00:6:7::8 echo request id=4242",
		"4 echo replies received",
	} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	var gone bool
	ns.Do(func() error { _, err := netlink.LinkByName("demo"); gone = err != nil; return nil })
	if !gone {
		t.Error("adapter demo still there after the demo ended")
	}
}

func TestDemoTimeout(t *testing.T) {
	ns := netns.ForTest(t)
	var out syncBuffer
	// 1 reply a second cannot make 100 in 1.5s.
	err := ns.Do(func() error { return runDemo(&out, 100, 1500*time.Millisecond, make(chan os.Signal)) })
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("runDemo = %v, want a time-out", err)
	}
}

// TestDemoCapture runs the demo with a packet capture, as `demo --pcap FILE` does, and
// reads the file back: the demo's pings (sent) and the system's replies (received).
func TestDemoCapture(t *testing.T) {
	ns := netns.ForTest(t)
	path := filepath.Join(t.TempDir(), "demo.pcapng")
	capture, err := pcap.Create(path, "demo")
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	err = ns.Do(func() error {
		return runDemo(&out, 2, 15*time.Second, make(chan os.Signal), wintun.WithCapture(capture))
	})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if err := capture.Close(); err != nil {
		t.Fatal(err)
	}
	if rx, tx := capture.Packets(); rx < 2 || tx < 2 {
		t.Errorf("captured %d received, %d sent; want 2 or more each", rx, tx)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	requests, replies := 0, 0
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		in, err := packet.Parse(data)
		if err != nil {
			continue
		}
		if in.IsEchoRequest() && in.Src == hostIPv4 {
			requests++
		}
		if in.IsEchoReply() && in.Src == systemIPv4.Addr() {
			replies++
		}
	}
	if requests < 2 || replies < 2 {
		t.Errorf("capture has %d echo requests from the demo and %d replies from the system; want 2 or more each", requests, replies)
	}
}
