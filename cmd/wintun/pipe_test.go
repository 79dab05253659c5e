//go:build linux

package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/vishvananda/netlink"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"
	"golang.org/x/sys/unix"
)

// vethPair joins two namespaces with a veth pair: a gets 192.168.77.1/24, b .2.
func vethPair(t *testing.T, a, b *netns.NS) {
	t.Helper()
	err := a.Do(func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth-a"}, PeerName: "veth-b"}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		peer, err := netlink.LinkByName("veth-b")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetNsFd(peer, b.FD()); err != nil {
			return fmt.Errorf("move veth-b: %w", err)
		}
		return configure("veth-a", "192.168.77.1/24")
	})
	if err == nil {
		err = b.Do(func() error { return configure("veth-b", "192.168.77.2/24") })
	}
	if err != nil {
		t.Fatal(err)
	}
}

func configure(name, prefix string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	addr, err := netlink.ParseAddr(prefix)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, addr); err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

// startPipe runs `wintun pipe` with args in ns until the returned function stops it
// and returns its error and output.
func startPipe(t *testing.T, ns *netns.NS, args ...string) (func() (string, error), *syncBuffer) {
	t.Helper()
	out := new(syncBuffer)
	stop := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- ns.Do(func() error { return cmdPipe(out, args, stop) }) }()
	// Wait for the session: the adapter's carrier goes on.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var up bool
		ns.Do(func() error {
			l, err := netlink.LinkByName(args[0])
			up = err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
			return nil
		})
		if up {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("pipe %q ended: %v\n%s", args, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipe %q: adapter not up after 5s\n%s", args, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := false
	var result error
	stopFn := func() (string, error) {
		if !stopped {
			stopped = true
			stop <- os.Interrupt
			select {
			case result = <-done:
			case <-time.After(10 * time.Second):
				result = errors.New("pipe did not stop within 10s")
			}
		}
		return out.String(), result
	}
	t.Cleanup(func() { stopFn() })
	return stopFn, out
}

// ping sends one ICMP echo request from ns to dst and waits up to timeout seconds
// for the reply.
func ping(ns *netns.NS, dst netip.Addr, timeout int64) error {
	return ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		tv := unix.NsecToTimeval(timeout * 1e9)
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		msg := packet.Echo(dst, dst, packet.EchoRequest4, 7777, 1, []byte("pipe"))[20:]
		if err := unix.Sendto(fd, msg, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err == unix.EINTR { // the Go runtime's preemption signals
				continue
			}
			if err != nil {
				return fmt.Errorf("no echo reply from %v: %w", dst, err)
			}
			m := buf[int(buf[0]&0xf)*4 : n]
			if len(m) >= 8 && m[0] == packet.EchoReply4 && m[4] == 7777>>8 && m[5] == 7777&0xff {
				return nil
			}
		}
	})
}

// TestPipe makes a point-to-point tunnel of two pipes in two namespaces joined by a
// veth, then sends a ping and a few MiB over TCP through it, with a capture on one
// side.
func TestPipe(t *testing.T) {
	nsA, nsB := netns.ForTest(t), netns.ForTest(t)
	vethPair(t, nsA, nsB)
	capFile := filepath.Join(t.TempDir(), "a.pcapng")
	stopA, outA := startPipe(t, nsA, "wt0", "--listen", "192.168.77.1:51820", "--address", "10.77.0.1/24", "--pcap", capFile)
	stopB, outB := startPipe(t, nsB, "wt0", "--connect", "192.168.77.1:51820", "--address", "10.77.0.2/24")
	// The listener learns its peer from the connecting pipe's first hello.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(outA.String(), "peer is"); {
		if time.Now().After(deadline) {
			t.Fatalf("listening pipe learnt no peer in 5s\nA:\n%s\nB:\n%s", outA.String(), outB.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := ping(nsA, netip.MustParseAddr("10.77.0.2"), 3); err != nil {
		t.Fatalf("ping through the tunnel: %v\nA:\n%s\nB:\n%s", err, outA.String(), outB.String())
	}

	// TCP from A to B, verified by SHA-256.
	const size = 8 << 20
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	var ln net.Listener
	if err := nsB.Do(func() (err error) { ln, err = net.Listen("tcp4", "10.77.0.2:9000"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan [32]byte, 1)
	recvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			recvErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err == nil && n != size {
			err = fmt.Errorf("received %d bytes, want %d", n, size)
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
		recvErr <- err
	}()
	var conn net.Conn
	if err := nsA.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", "10.77.0.2:9000", 10*time.Second)
		return
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := conn.Write(data); err != nil {
		t.Fatalf("send: %v", err)
	}
	conn.Close()
	if err := <-recvErr; err != nil {
		t.Fatalf("receive: %v", err)
	}
	if <-got != want {
		t.Fatal("data corrupted through the tunnel")
	}
	t.Logf("%d MiB through the tunnel in %v", size>>20, time.Since(start).Round(time.Millisecond))

	textB, errB := stopB()
	textA, errA := stopA()
	if errA != nil || errB != nil {
		t.Fatalf("pipes: %v, %v\nA:\n%s\nB:\n%s", errA, errB, textA, textB)
	}
	for _, o := range []string{textA, textB} {
		if !strings.Contains(o, "UNENCRYPTED") || !strings.Contains(o, "pipe wt0 stopped") {
			t.Errorf("pipe output:\n%s", o)
		}
	}
	if !strings.Contains(textA, "peer is 192.168.77.2:") || !strings.Contains(textA, "captured ") {
		t.Errorf("listening pipe output:\n%s", textA)
	}
	// Both adapters were created by the pipes and went with them.
	for _, ns := range []*netns.NS{nsA, nsB} {
		ns.Do(func() error {
			if _, err := netlink.LinkByName("wt0"); err == nil {
				t.Error("adapter wt0 still there after its pipe stopped")
			}
			return nil
		})
	}
	checkCapture(t, capFile)
}

// checkCapture reads the pipe's capture back: it must be mode 0600, both directions
// must be there, and tcpdump must read it too when installed.
func checkCapture(t *testing.T, path string) {
	t.Helper()
	// The capture holds the tunnel's traffic in clear: its owner's alone.
	if fi, err := os.Stat(path); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("capture %s: mode %v, want 0600", path, fi.Mode().Perm())
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
	from := map[netip.Addr]int{}
	echo := map[string]bool{}
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		in, err := packet.Parse(data)
		if err != nil {
			continue
		}
		from[in.Src]++
		if in.IsEchoRequest() {
			echo["request"] = true
		}
		if in.IsEchoReply() {
			echo["reply"] = true
		}
	}
	if from[netip.MustParseAddr("10.77.0.1")] < 100 || from[netip.MustParseAddr("10.77.0.2")] < 100 || !echo["request"] || !echo["reply"] {
		t.Errorf("capture: packets by source %v, echo %v; want both directions", from, echo)
	}
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Log("tcpdump not installed: its reading of the capture is not checked")
		return
	}
	out, err := exec.Command(tcpdump, "-n", "-r", path, "icmp").Output()
	if err != nil {
		t.Fatalf("tcpdump -r: %v", err)
	}
	for _, want := range []string{"10.77.0.1 > 10.77.0.2: ICMP echo request", "10.77.0.2 > 10.77.0.1: ICMP echo reply"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("tcpdump output lacks %q:\n%s", want, out)
		}
	}
}

// TestPipeOpensExisting runs a pipe on an adapter made by `create`: the pipe leaves it
// in place, and a peer that never answers costs nothing but counted drops.
func TestPipeOpensExisting(t *testing.T) {
	ns := netns.ForTest(t)
	if out, err := run(t, ns, func(b *bytes.Buffer) error {
		return cmdCreate(b, []string{"wt5", "--address", "10.78.0.1/24"})
	}); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	stop, _ := startPipe(t, ns, "wt5", "--listen", "127.0.0.1:51821")
	ping(ns, netip.MustParseAddr("10.78.0.2"), 1) // no peer yet: dropped
	// Stats of an adapter in use, once in JSON.
	out, err := run(t, ns, func(b *bytes.Buffer) error { return cmdStats(b, []string{"wt5", "--json"}, nil) })
	var r statsReport
	if err != nil || json.Unmarshal([]byte(out), &r) != nil || r.Sessions != 1 || !r.Carrier || r.ToApplication.Packets == 0 {
		t.Errorf("stats --json: %v\n%s", err, out)
	}
	o, err := stop()
	if err != nil || !strings.Contains(o, "adapter wt5 opened") || !strings.Contains(o, "before the peer was known") {
		t.Errorf("pipe: %v\n%s", err, o)
	}
	if strings.Contains(o, " 0 before the peer was known") {
		t.Errorf("the ping was not counted as dropped:\n%s", o)
	}
	ns.Do(func() error {
		if _, err := netlink.LinkByName("wt5"); err != nil {
			t.Errorf("pipe removed the adapter it opened: %v", err)
		}
		return nil
	})
}

// TestPipeListenPeer runs a listening pipe with --peer on loopback inside a namespace:
// an echo request from a stranger's address (a hello too) is dropped and counted, and
// the stranger never becomes the peer nor gets an answer; the same request from the
// --peer address gets its echo reply, sent to that address from the start.
func TestPipeListenPeer(t *testing.T) {
	var help bytes.Buffer
	cmdPipe(&help, []string{"--help"}, nil)
	text := strings.Join(strings.Fields(help.String()), " ") // the words, across line breaks
	for _, want := range []string{"--peer", "without --peer, anyone who can send to the port can inject packets", "not a VPN"} {
		if !strings.Contains(text, want) {
			t.Errorf("pipe --help lacks %q:\n%s", want, help.String())
		}
	}
	if err := cmdPipeTo([]string{"wt6", "--connect", "127.0.0.1:1", "--peer", "127.0.0.1:2"}); !errors.As(err, new(usageError)) {
		t.Errorf("--peer with --connect: %v, want a usage error", err)
	}
	if err := cmdPipeTo([]string{"wt6", "--listen", "127.0.0.1:0", "--peer", "127.0.0.1"}); !errors.As(err, new(usageError)) {
		t.Errorf("--peer without a port: %v, want a usage error", err)
	}

	ns := netns.ForTest(t)
	var peer, stranger *net.UDPConn
	if err := ns.Do(func() (err error) {
		if peer, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 51831}); err != nil {
			return err
		}
		stranger, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 51832})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	defer stranger.Close()
	stop, out := startPipe(t, ns, "wt6", "--listen", "127.0.0.1:51830", "--peer", "127.0.0.1:51831", "--address", "10.79.0.1/24")
	pipeAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 51830}
	echo := func(seq uint16) []byte {
		return packet.Echo(netip.MustParseAddr("10.79.0.2"), netip.MustParseAddr("10.79.0.1"), packet.EchoRequest4, 4242, seq, []byte("peer"))
	}
	// The stranger first: if its request got in, its reply would reach the peer before
	// the reply to the peer's own request.
	for _, d := range [][]byte{echo(1), nil} {
		if _, err := stranger.WriteToUDP(d, pipeAddr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := peer.WriteToUDP(echo(2), pipeAddr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, from, err := peer.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no echo reply at the peer: %v\n%s", err, out.String())
		}
		in, err := packet.Parse(buf[:n])
		if err != nil || !in.IsEchoReply() || in.ID != 4242 || from.Port != 51830 {
			continue // the kernel's own packets out of the adapter, e.g. IPv6 solicitations
		}
		if in.Seq == 1 {
			t.Fatalf("the stranger's echo request went into the adapter\n%s", out.String())
		}
		if in.Seq == 2 {
			break
		}
	}
	stranger.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := stranger.ReadFromUDP(buf); err == nil {
		t.Errorf("the stranger got a %d-byte answer", n)
	}
	o, err := stop()
	if err != nil {
		t.Fatalf("pipe: %v\n%s", err, o)
	}
	for _, want := range []string{"peer 127.0.0.1:51831", " 1 from the peer", " 2 from strangers"} {
		if !strings.Contains(o, want) {
			t.Errorf("pipe output lacks %q:\n%s", want, o)
		}
	}
	if strings.Contains(o, "peer is 127.0.0.1:51832") {
		t.Errorf("the stranger became the peer:\n%s", o)
	}
	t.Logf("pipe output:\n%s", o)
}
