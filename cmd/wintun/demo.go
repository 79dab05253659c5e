package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/packet"
	"go.wintun.dev/wintun/internal/pcap"
)

// The demo is Wintun's example program: the system side of adapter "demo" is
// 10.6.7.7 / fd00:6:7::7, and this program is the host behind it.
var (
	demoGUID   = wintun.GUID{0xde, 0xad, 0xba, 0xbe, 0xca, 0xfe, 0xbe, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	systemIPv4 = netip.MustParsePrefix("10.6.7.7/24")
	systemIPv6 = netip.MustParsePrefix("fd00:6:7::7/64")
	hostIPv4   = netip.MustParseAddr("10.6.7.8")
	hostIPv6   = netip.MustParseAddr("fd00:6:7::8")
)

// reexecEnv marks the copy of the demo that runs in its own namespaces.
const reexecEnv = "WINTUN_DEMO_NETNS"

const demoUsage = `usage: wintun demo [--count N] [--timeout D] [--netns] [--pcap FILE]

Creates adapter "demo" with 10.6.7.7/24 and fd00:6:7::7/64 on the system side and plays
the host 10.6.7.8 / fd00:6:7::8 behind it: pings 10.6.7.7 every second and answers
pings (try ` + "`ping 10.6.7.8`" + `). The adapter goes when the demo ends. Without
CAP_NET_ADMIN it runs in a new user and network namespace.

`

func demo(out io.Writer, args []string) error {
	c := newCommand("demo", demoUsage, out)
	count := c.Int("count", 0, "exit 0 after `N` echo replies from 10.6.7.7 (0: run until Ctrl+C)")
	timeout := c.Duration("timeout", 0, "with --count, give up and exit 1 after `D` (default 10s + 1s per reply)")
	private := c.Bool("netns", false, "run in a new network namespace even with CAP_NET_ADMIN")
	pcapPath := c.String("pcap", "", "write every packet crossing the session, both ways, to pcapng `FILE`: "+
		"a new file, mode 0600, as it holds the traffic in clear (an existing FILE is refused)")
	if _, err := c.parseArgs(args, 0); err != nil {
		return err
	}
	if *count < 0 {
		return usageError{"demo", fmt.Sprintf("--count %d: want 0 (run until Ctrl+C) or more replies", *count)}
	}
	if *timeout < 0 {
		return usageError{"demo", fmt.Sprintf("--timeout %v: want a positive duration", *timeout)}
	}
	if *timeout != 0 && *count == 0 {
		return usageError{"demo", "--timeout goes with --count: without it the demo runs until Ctrl+C"}
	}
	if os.Getenv(reexecEnv) == "" && (*private || !hasCapNetAdmin()) {
		return reexecInNamespace(!hasCapNetAdmin())
	}
	if *timeout == 0 {
		*timeout = 10*time.Second + time.Duration(*count)*time.Second
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	if *pcapPath == "" {
		return runDemo(out, *count, *timeout, signals)
	}
	capture, err := pcap.Create(*pcapPath, "demo")
	if err != nil {
		return err
	}
	err = runDemo(out, *count, *timeout, signals, wintun.WithCapture(capture))
	// runDemo has ended the session: no packet is captured after this Close.
	if cerr := capture.Close(); cerr != nil && err == nil {
		err = cerr
	}
	rx, tx := capture.Packets()
	fmt.Fprintf(out, "captured %d packets (%d from the system, %d to it) in %s\n", rx+tx, rx, tx, *pcapPath)
	return err
}

// runDemo runs the demo in the calling thread's network namespace until count echo
// replies arrived (0: no limit), timeout passed, or stop receives. opts configure the
// session (e.g. a packet capture); the session has ended when runDemo returns.
func runDemo(out io.Writer, count int, timeout time.Duration, stop <-chan os.Signal, opts ...wintun.SessionOption) error {
	adapter, err := wintun.CreateAdapter("demo", "Example", &demoGUID)
	if err != nil {
		if os.Getenv(reexecEnv) != "" && errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%w\n/dev/net/tun is not open to this user: as root, run `chmod 0666 /dev/net/tun` "+
				"(the mode most distributions ship; the kernel documents it as safe), or run the demo as root", err)
		}
		return err
	}
	defer adapter.Close()
	for _, p := range []netip.Prefix{systemIPv4, systemIPv6} {
		if err := adapter.AddAddress(p); err != nil {
			return err
		}
	}
	session, err := adapter.StartSession(0x400000, opts...)
	if err != nil {
		return err
	}
	defer session.End()
	fmt.Fprintf(out, "adapter %s (index %d, LUID %#x, GUID %v) up; this program is %v and %v\n",
		adapter.Name(), adapter.Index(), adapter.LUID(), adapter.GUID(), hostIPv4, hostIPv6)

	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	var expire <-chan time.Time
	if count > 0 {
		expire = time.After(timeout)
	}
	id := uint16(os.Getpid())
	seq := uint16(0)
	ping := func() error {
		seq++
		return send(out, session, packet.Echo(hostIPv4, systemIPv4.Addr(), packet.EchoRequest4, id, seq, []byte("wintun demo")))
	}
	if err := ping(); err != nil {
		return err
	}
	replies := 0
	for {
		for {
			p, err := session.ReceivePacket()
			if err == wintun.ErrNoMoreItems {
				break
			}
			if err != nil {
				return err
			}
			in, perr := packet.Parse(p)
			var answer []byte
			if perr != nil {
				fmt.Fprintf(out, "received %d bytes: %v\n", len(p), perr)
			} else {
				fmt.Fprintf(out, "received %v\n", in)
				if in.IsEchoRequest() && (in.Dst == hostIPv4 || in.Dst == hostIPv6) {
					answer = in.Reply()
				}
				if in.IsEchoReply() && in.Dst == hostIPv4 && in.ID == id {
					replies++
				}
			}
			session.ReleaseReceivePacket(p)
			if answer != nil {
				if err := send(out, session, answer); err != nil {
					return err
				}
			}
			if count > 0 && replies >= count {
				fmt.Fprintf(out, "%d echo replies received; removing adapter %s\n", replies, adapter.Name())
				return nil
			}
		}
		select {
		case _, ok := <-session.ReadWaitEvent():
			if !ok {
				return errors.New("session ended: the adapter went away")
			}
		case <-ticker.C:
			if err := ping(); err != nil {
				return err
			}
		case sig := <-stop:
			fmt.Fprintf(out, "%v: ending the session and removing adapter %s\n", sig, adapter.Name())
			return nil
		case <-expire:
			err := fmt.Errorf("timed out after %v with %d of %d echo replies", timeout, replies, count)
			if runtime.GOOS == "windows" {
				// The Public profile of a stock Windows firewall drops inbound pings
				// on a new, "Unidentified" network.
				err = fmt.Errorf("%w; Windows files a new Wintun network as Unidentified (Public firewall profile), which blocks inbound ping: allow ICMPv4 echo on the Public profile or make the network Private (see docs/windows.md)", err)
			}
			return err
		}
	}
}

func send(out io.Writer, s *wintun.Session, p []byte) error {
	buf, err := s.AllocateSendPacket(len(p))
	if err == wintun.ErrBufferOverflow {
		fmt.Fprintln(out, "send ring full: packet dropped")
		return nil
	}
	if err != nil {
		return err
	}
	copy(buf, p)
	s.SendPacket(buf)
	return nil
}
