package wintun_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostTun does what a host that hands a tun queue over does: it opens /dev/net/tun
// in ns, blocking, sets up the device name with flags, gives it addr (unless empty)
// and brings it up. The file is the caller's.
func hostTun(t *testing.T, ns *netns.NS, name string, flags uint16, addr string) *os.File {
	t.Helper()
	var f *os.File
	if err := ns.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), "/dev/net/tun")
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("TUNSETIFF %q %#x: %w", name, flags, err)
		}
		link, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if addr != "" {
			a, err := netlink.ParseAddr(addr)
			if err != nil {
				return err
			}
			if err := netlink.AddrAdd(link, a); err != nil {
				return err
			}
		}
		return netlink.LinkSetUp(link)
	}); err != nil {
		if f != nil {
			f.Close()
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fileIoctl runs ioctl on f's descriptor.
func fileIoctl(f *os.File, ioctl func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if cerr := rc.Control(func(fd uintptr) { err = ioctl(int(fd)) }); cerr != nil {
		return cerr
	}
	return err
}

// adopt hands f over to a new session, run in ns like a host's child would be.
func adopt(t *testing.T, ns *netns.NS, f *os.File, opts ...wintun.SessionOption) *wintun.Session {
	t.Helper()
	var s *wintun.Session
	if err := ns.Do(func() (err error) {
		s, err = wintun.AdoptSession(f, 0x400000, opts...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.End)
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("the handed-over file is still open after AdoptSession: Close = %v", err)
	}
	return s
}

const (
	tunPlain = unix.IFF_TUN | unix.IFF_NO_PI
	tunVnet  = tunPlain | unix.IFF_VNET_HDR
)

var vnetCases = []struct {
	name  string
	flags uint16
}{{"plain", tunPlain}, {"vnet_hdr", tunVnet}}

// TestAdoptPing answers, through an adopted session, a ping that the kernel sends
// into the device; a queue the host detached (IFF_DETACH_QUEUE) is attached again.
func TestAdoptPing(t *testing.T) {
	cases := append(vnetCases, struct {
		name  string
		flags uint16
	}{"detached", tunPlain | unix.IFF_MULTI_QUEUE})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkLeaks(t)
			ns := netns.ForTest(t)
			f := hostTun(t, ns, "wtadopt", c.flags, "10.230.0.1/24")
			if c.name == "detached" {
				if err := fileIoctl(f, func(fd int) error {
					ifr, _ := unix.NewIfreq("")
					ifr.SetUint16(unix.IFF_DETACH_QUEUE)
					return unix.IoctlIfreq(fd, unix.TUNSETQUEUE, ifr)
				}); err != nil {
					t.Fatal(err)
				}
			}
			s := adopt(t, ns, f)
			var conn net.PacketConn
			if err := ns.Do(func() (err error) {
				conn, err = net.ListenPacket("ip4:icmp", "10.230.0.1")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			local, remote := netip.MustParseAddr("10.230.0.1"), netip.MustParseAddr("10.230.0.2")
			data := []byte("adopted " + c.name)
			// The raw socket takes the ICMP message; the kernel adds the IP header.
			request := packet.Echo(local, remote, packet.EchoRequest4, 0x4242, 9, data)[20:]
			if _, err := conn.WriteTo(request, &net.IPAddr{IP: remote.AsSlice()}); err != nil {
				t.Fatal(err)
			}
			in := receive(t, s, 5*time.Second, func(in packet.Info) bool { return in.IsEchoRequest() && in.ID == 0x4242 })
			send(t, s, in.Reply())
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 1500)
			for {
				n, from, err := conn.ReadFrom(buf)
				if err != nil {
					t.Fatalf("no echo reply from %v: %v; stats %+v", remote, err, wintun.SessionStats(s))
				}
				reply, err := packet.Parse(packet.IP(remote, local, packet.ProtoICMP, buf[:n]))
				if err == nil && reply.IsEchoReply() && reply.ID == 0x4242 {
					if from.String() != remote.String() || reply.Seq != 9 || string(reply.Payload[8:]) != string(data) {
						t.Errorf("echo reply from %v, seq %d, data %q; want from %v, seq 9, data %q", from, reply.Seq, reply.Payload[8:], remote, data)
					}
					break
				}
			}
		})
	}
}

// TestAdoptForwarderTCP moves a TCP transfer between two namespaces through a
// forwarder between two adopted sessions, on either engine: offloads are used on a
// device with IFF_VNET_HDR and only there, and only where the session runs in the
// device's network namespace.
func TestAdoptForwarderTCP(t *testing.T) {
	offloads := os.Getenv("WINTUN_OFFLOAD") != "0"
	for _, c := range []struct {
		name      string
		vnet      bool
		uring     bool // WithIOUring(true), else WithIOUring(false)
		gso       bool
		elsewhere bool // the sessions run in a namespace of their own
	}{
		{name: "plain/poll"},
		{name: "plain/uring", uring: true},
		{name: "vnet_hdr/poll", vnet: true},
		{name: "vnet_hdr/uring", vnet: true, uring: true},
		{name: "vnet_hdr/gso", vnet: true, gso: true},
		{name: "vnet_hdr/elsewhere", vnet: true, elsewhere: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkLeaks(t)
			flags := uint16(tunPlain)
			if c.vnet {
				flags = tunVnet
			}
			opts := []wintun.SessionOption{wintun.WithIOUring(c.uring)}
			if c.gso {
				opts = append(opts, wintun.WithGSO())
			}
			nsA, nsB := netns.ForTest(t), netns.ForTest(t)
			fa := hostTun(t, nsA, "wtadopt", flags, "10.231.0.1/24")
			fb := hostTun(t, nsB, "wtadopt", flags, "10.231.0.2/24")
			runA, runB := nsA, nsB
			if c.elsewhere {
				runA = netns.ForTest(t)
				runB = runA
			}
			sa, sb := adopt(t, runA, fa, opts...), adopt(t, runB, fb, opts...)
			for _, s := range []*wintun.Session{sa, sb} {
				// The io_uring engine needs the header; without it the poll engine runs.
				if got, want := wintun.SessionUsesIOUring(s), c.uring && c.vnet; got != want {
					t.Errorf("io_uring engine in use: %v, want %v", got, want)
				}
			}
			var gsoPackets atomic.Uint64
			count := func(p []byte) {
				if c.gso && p[1] != 0 { // gso_type of the virtio_net_hdr
					gsoPackets.Add(1)
				}
			}
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); forwardBatch(sa, sb, count) }()
			go func() { defer wg.Done(); forwardBatch(sb, sa, count) }()
			defer wg.Wait()
			defer sb.End()
			defer sa.End()
			netns.TransferTCP(t, nsA, nsB, "10.231.0.2:5031", 16<<20)
			supers, coalesced := gsoPackets.Load(), uint64(0)
			for _, s := range []*wintun.Session{sa, sb} {
				st := wintun.SessionStats(s)
				t.Logf("stats: %+v", st)
				if st.ReceiveDropsRingFull != 0 || st.SendDiscardsInvalid != 0 || st.SendErrors != 0 || st.ReceiveErrors != 0 {
					t.Errorf("drops or errors in a TCP transfer: %+v", st)
				}
				supers += st.ReceivedSuperPackets
				coalesced += st.SentSuperPackets
			}
			switch {
			case !c.vnet && (supers != 0 || coalesced != 0):
				t.Errorf("%d super-packets received and %d sent on a device without IFF_VNET_HDR", supers, coalesced)
			case c.elsewhere && supers != 0:
				t.Errorf("%d super-packets received by sessions outside the device's namespace", supers)
			case c.vnet && !c.elsewhere && offloads && supers == 0:
				t.Error("the kernel handed over no super-packet: offloads are not in use")
			}
		})
	}
}

// TestAdoptRefuses checks that what a session cannot run on is refused with a clear
// error, and that a refused file stays open and the caller's.
func TestAdoptRefuses(t *testing.T) {
	checkLeaks(t)
	ns := netns.ForTest(t)
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	var unattached *os.File
	if fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		t.Fatal(err)
	} else {
		unattached = os.NewFile(uintptr(fd), "/dev/net/tun")
		defer unattached.Close()
	}
	bigHeader := hostTun(t, ns, "wtbighdr", tunVnet, "")
	if err := ns.Do(func() error {
		return fileIoctl(bigHeader, func(fd int) error { return unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, 12) })
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		f    *os.File
		opts []wintun.SessionOption
		want error
	}{
		{"tap", hostTun(t, ns, "wttap", unix.IFF_TAP|unix.IFF_NO_PI, ""), nil, errors.ErrUnsupported},
		{"packet info", hostTun(t, ns, "wtpi", unix.IFF_TUN, ""), nil, errors.ErrUnsupported},
		{"gso without vnet_hdr", hostTun(t, ns, "wtnohdr", tunPlain, ""), []wintun.SessionOption{wintun.WithGSO()}, errors.ErrUnsupported},
		{"12-byte vnet_hdr", bigHeader, nil, errors.ErrUnsupported},
		{"not tun", devNull, nil, unix.ENOTTY},
		{"not attached", unattached, nil, unix.EBADFD},
	} {
		var s *wintun.Session
		err := ns.Do(func() (err error) {
			s, err = wintun.AdoptSession(c.f, wintun.RingCapacityMin, c.opts...)
			return err
		})
		if err == nil {
			s.End()
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: AdoptSession = %v, want an error satisfying errors.Is(err, %v)", c.name, err, c.want)
			continue
		}
		t.Logf("%s: %v", c.name, err)
		if _, err := c.f.Stat(); err != nil {
			t.Errorf("%s: the refused file is not open any more: %v", c.name, err)
		}
	}
	if _, err := wintun.AdoptSession(nil, wintun.RingCapacityMin); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("AdoptSession(nil) = %v, want os.ErrInvalid", err)
	}
}

// TestAdoptEndCloses checks that End closes the session's queue, which removes a
// device that nothing else holds, and deletes nothing itself: a persistent device
// stays.
func TestAdoptEndCloses(t *testing.T) {
	for _, persist := range []bool{false, true} {
		t.Run(fmt.Sprintf("persist=%v", persist), func(t *testing.T) {
			checkLeaks(t)
			ns := netns.ForTest(t)
			// Netlink counts the queues of multiqueue devices only.
			f := hostTun(t, ns, "wtend", tunVnet|unix.IFF_MULTI_QUEUE, "10.232.0.1/24")
			if persist {
				if err := fileIoctl(f, func(fd int) error { return unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1) }); err != nil {
					t.Fatal(err)
				}
			}
			// queues reports whether the device exists, and how many queues it has.
			queues := func() (bool, int) {
				var n int
				err := ns.Do(func() error {
					l, err := netlink.LinkByName("wtend")
					if err == nil {
						n = l.(*netlink.Tuntap).Queues
					}
					return err
				})
				var nf netlink.LinkNotFoundError
				if err != nil && !errors.As(err, &nf) {
					t.Fatal(err)
				}
				return err == nil, n
			}
			s := adopt(t, ns, f)
			if exists, n := queues(); !exists || n != 1 {
				t.Fatalf("while the adopted session runs: device exists %v with %d queues, want 1 queue", exists, n)
			}
			s.End()
			// The io_uring engine's ring, which the kernel tears down asynchronously
			// after End closes it, may hold the queue a moment longer.
			deadline := time.Now().Add(10 * time.Second)
			exists, n := queues()
			for ; exists && n > 0 && time.Now().Before(deadline); exists, n = queues() {
				time.Sleep(time.Millisecond)
			}
			switch {
			case exists && n > 0:
				t.Errorf("10 s after End the device still has %d queues", n)
			case exists != persist:
				t.Errorf("after End the device exists: %v, want %v (persistent: %v)", exists, persist, persist)
			}
			if _, err := s.ReceivePacket(); !errors.Is(err, wintun.ErrSessionEnded) {
				t.Errorf("ReceivePacket after End = %v, want ErrSessionEnded", err)
			}
		})
	}
}

// adoptChildEnv makes the test binary, re-executed by TestAdoptByUnprivilegedChild,
// run TestAdoptChild.
const adoptChildEnv = "WINTUN_TEST_ADOPT_CHILD"

// TestAdoptByUnprivilegedChild hands a queue, opened and set up by the test, to a
// child process that drops to the user nobody before it adopts the queue and
// exchanges a ping with the kernel through it: a privileged parent's handover.
func TestAdoptByUnprivilegedChild(t *testing.T) {
	ns := netns.ForTest(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := hostTun(t, ns, "wtchild", tunVnet, "10.233.0.1/24")
	var out []byte
	err = ns.Do(func() (err error) {
		// The child is forked from this thread, so it starts in this namespace.
		cmd := exec.Command(exe, "-test.run=^TestAdoptChild$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), adoptChildEnv+"=1")
		cmd.ExtraFiles = []*os.File{f} // descriptor 3 in the child
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil || !strings.Contains(string(out), "adopting child: all checks passed") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child output:\n%s", out)
}

// TestAdoptChild runs only in the child of TestAdoptByUnprivilegedChild.
func TestAdoptChild(t *testing.T) {
	if os.Getenv(adoptChildEnv) == "" {
		t.Skip("run by TestAdoptByUnprivilegedChild")
	}
	// The test binary lies in a directory only root may enter: the child starts as
	// root and drops its privileges here, every thread's.
	if err := syscall.Setgroups(nil); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setgid(unprivGID); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setuid(unprivUID); err != nil {
		t.Fatal(err)
	}
	if ok, _ := netns.Privileged(); ok || os.Geteuid() != unprivUID {
		t.Fatalf("still privileged after dropping to uid %d", unprivUID)
	}
	f := os.NewFile(3, "handed-over tun queue")
	// Without CAP_NET_ADMIN the kernel does not say where the device is: the
	// session finds it by name.
	if err := fileIoctl(f, func(fd int) error {
		nsfd, err := unix.IoctlRetInt(fd, unix.TUNGETDEVNETNS)
		if err == nil {
			unix.Close(nsfd)
		}
		return err
	}); !errors.Is(err, unix.EPERM) {
		t.Errorf("TUNGETDEVNETNS as uid %d: %v, want EPERM", unprivUID, err)
	}
	s, err := wintun.AdoptSession(f, wintun.RingCapacityMin)
	if err != nil {
		t.Fatalf("AdoptSession as uid %d: %v", unprivUID, err)
	}
	defer s.End()
	local, remote := netip.MustParseAddr("10.233.0.2"), netip.MustParseAddr("10.233.0.1")
	send(t, s, packet.Echo(local, remote, packet.EchoRequest4, 0x4343, 3, []byte("from the child")))
	in := receive(t, s, 5*time.Second, func(in packet.Info) bool { return in.IsEchoReply() && in.ID == 0x4343 })
	if in.Src != remote || in.Dst != local || in.Seq != 3 {
		t.Errorf("echo reply %v seq %d, want from %v to %v seq 3", in, in.Seq, remote, local)
	}
	if !t.Failed() {
		fmt.Println("adopting child: all checks passed")
	}
}
