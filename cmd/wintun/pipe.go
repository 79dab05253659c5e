package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/pcap"
)

const pipeUsage = `usage: wintun pipe NAME (--listen ADDR [--peer ADDR] | --connect ADDR) [--address PREFIX]...
                   [--mtu N] [--pcap FILE]

UNENCRYPTED: a dumb layer 3 pipe, an example of how a VPN sits on this library: it is
not a VPN. Every packet the system sends out through adapter NAME goes, as is, in one
UDP datagram to the peer, and every datagram from the peer goes into the adapter. Anyone
on the path can read, change and inject these packets: use it on networks you trust or
for tests.

Opens adapter NAME if it exists (made by ` + "`wintun create`" + `, possibly with --owner so
that no CAP_NET_ADMIN is needed here); otherwise creates it for the life of this command.

--listen ADDR (e.g. :51820) receives on ADDR. With --peer PEER (host:port), it sends to
PEER from the start and drops, and counts, every datagram from any other address or
port. PEER must send from the port named, e.g. another pipe with --listen and --peer
naming this one. --peer checks the source address only, which is no authentication: it
keeps out the senders that cannot forge PEER's address, no more. And without --peer,
anyone who can send to the port can inject packets: the first datagram's source becomes
the peer, whoever sent it, and after that anyone who forges that source gets in.

--connect ADDR sends to ADDR from a port the system picks, and sends an empty datagram
every second until the peer answers (then every 25 s) so that a listening peer without
--peer learns its address. Runs until Ctrl+C.

`

// pipeKeepalive is how often a connecting pipe reminds the listener of its address
// once the listener has answered; before that it says hello every second.
const pipeKeepalive = 25 * time.Second

// pipeCounters are what a pipe reports at the end.
type pipeCounters struct {
	toPeer, fromPeer              atomic.Uint64 // packets forwarded
	dropNoPeer, dropForeign       atomic.Uint64 // no peer known yet; datagram from a stranger
	dropRingFull, sendErrors      atomic.Uint64 // adapter's send ring full; UDP send failed
	dropEmptyOrTooBig, readErrors atomic.Uint64
}

func cmdPipe(out io.Writer, args []string, stop <-chan os.Signal) error {
	c := newCommand("pipe", pipeUsage, out)
	listen := c.String("listen", "", "listen on UDP `ADDR` (host:port or :port); without --peer, the first sender becomes the peer")
	peerFlag := c.String("peer", "", "with --listen: the peer's UDP `ADDR` (host:port); datagrams from any other address are dropped")
	connect := c.String("connect", "", "send to the peer at UDP `ADDR` (host:port)")
	var addrs prefixList
	c.Var(&addrs, "address", "add address `PREFIX` to the adapter if it lacks it; repeatable")
	mtu := c.Int("mtu", 1420, "MTU `N` of the adapter, when pipe creates it (leaves room for the UDP and IP headers; "+
		"1280 or more for IPv6)")
	pcapPath := c.String("pcap", "", "write every packet crossing the session, both ways, to pcapng `FILE`: "+
		"a new file, mode 0600, as it holds the traffic in clear (an existing FILE is refused)")
	pos, err := c.parseArgs(args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if err := checkName("pipe", name); err != nil {
		return err
	}
	if (*listen == "") == (*connect == "") {
		return usageError{"pipe", "give exactly one of --listen ADDR and --connect ADDR"}
	}
	if *mtu < 68 || *mtu > wintun.PacketSizeMax {
		return usageError{"pipe", fmt.Sprintf("--mtu %d: want 68 to %d", *mtu, wintun.PacketSizeMax)}
	}
	if err := checkIPv6MTU("pipe", *mtu, addrs); err != nil {
		return err
	}
	var peer netip.AddrPort
	if *peerFlag != "" {
		if *listen == "" {
			return usageError{"pipe", "--peer goes with --listen: --connect ADDR names the peer already"}
		}
		a, err := net.ResolveUDPAddr("udp", *peerFlag)
		if err != nil {
			return usageError{"pipe", "--peer: " + err.Error()}
		}
		if a.Port == 0 || a.IP == nil || a.IP.IsUnspecified() {
			return usageError{"pipe", "--peer: want the peer's host and port, like 192.0.2.2:51820"}
		}
		ap := a.AddrPort()
		peer = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	var conn *net.UDPConn
	if *listen != "" {
		laddr, err := net.ResolveUDPAddr("udp", *listen)
		if err != nil {
			return usageError{"pipe", "--listen: " + err.Error()}
		}
		if conn, err = net.ListenUDP("udp", laddr); err != nil {
			return fmt.Errorf("wintun pipe: %w", err)
		}
	} else {
		raddr, err := net.ResolveUDPAddr("udp", *connect)
		if err != nil {
			return usageError{"pipe", "--connect: " + err.Error()}
		}
		if raddr.Port == 0 {
			return usageError{"pipe", "--connect: the peer's port is missing"}
		}
		if conn, err = net.DialUDP("udp", nil, raddr); err != nil {
			return fmt.Errorf("wintun pipe: %w", err)
		}
	}
	defer conn.Close()
	return runPipe(out, pipeConfig{name: name, conn: conn, listening: *listen != "", peer: peer, addrs: addrs, mtu: *mtu, pcap: *pcapPath}, stop)
}

type pipeConfig struct {
	name      string
	conn      *net.UDPConn // bound (listening) or connected
	listening bool
	peer      netip.AddrPort // with listening: the only source accepted (--peer), if valid
	addrs     []netip.Prefix
	mtu       int
	pcap      string
}

// openOrCreate opens adapter name, or creates it for the life of the caller when it
// does not exist; created reports which.
func openOrCreate(name string, mtu int) (a *wintun.Adapter, created bool, err error) {
	a, err = wintun.OpenAdapter(name)
	if errors.Is(err, fs.ErrNotExist) {
		a, err = wintun.CreateAdapter(name, "Pipe", nil, wintun.WithMTU(mtu))
		if errors.Is(err, os.ErrPermission) {
			return nil, false, needRoot("pipe", fmt.Sprintf("there is no adapter %s, and creating it", name),
				fmt.Sprintf("create it once with `sudo wintun create %s --owner USER`, then run `wintun pipe %s ...` as USER; "+
					"or run the pipe as root", name, name), err)
		}
		created = true
	}
	if err != nil {
		return nil, false, lookupError("pipe", name, err)
	}
	return a, created, nil
}

func runPipe(out io.Writer, cfg pipeConfig, stop <-chan os.Signal) error {
	adapter, created, err := openOrCreate(cfg.name, cfg.mtu)
	if err != nil {
		return err
	}
	defer adapter.Close() // removes the adapter only if we created it
	for _, p := range cfg.addrs {
		if err := adapter.AddAddress(p); err != nil && !errors.Is(err, fs.ErrExist) {
			return configError("pipe", adapter, "address", p, err)
		}
	}
	var opts []wintun.SessionOption
	var capture *pcap.Writer
	if cfg.pcap != "" {
		if capture, err = pcap.Create(cfg.pcap, cfg.name); err != nil {
			return err
		}
		defer capture.Close()
		opts = append(opts, wintun.WithCapture(capture))
	}
	session, err := adapter.StartSession(0x400000, opts...)
	if errors.Is(err, os.ErrPermission) {
		return needRoot("pipe", "starting a session on adapter "+cfg.name,
			fmt.Sprintf("run the pipe as root, or make the adapter this user's: `sudo wintun delete %s`, then "+
				"`sudo wintun create %s --owner USER` (`wintun list` shows its owner and group; with both set, a user needs both)",
				cfg.name, cfg.name), err)
	}
	if err != nil {
		return err
	}
	defer session.End()

	how := "opened"
	if created {
		how = "created (removed at exit)"
	}
	peerText := "learning the peer from the first datagram (no --peer: anyone who can send to this port can inject packets)"
	switch {
	case !cfg.listening:
		peerText = "peer " + cfg.conn.RemoteAddr().String()
	case cfg.peer.IsValid():
		peerText = "peer " + cfg.peer.String() + " (--peer: datagrams from any other address are dropped)"
	}
	fmt.Fprintf(out, "wintun pipe: UNENCRYPTED layer 3 pipe: anyone on the path can read and inject packets\n")
	fmt.Fprintf(out, "adapter %s %s (index %d) <-> UDP %s, %s; Ctrl+C stops\n",
		cfg.name, how, adapter.Index(), cfg.conn.LocalAddr(), peerText)

	p := &pipe{cfg: cfg, session: session, out: out, done: make(chan struct{})}
	if cfg.peer.IsValid() {
		p.peer.Store(&cfg.peer)
	}
	if !cfg.listening || cfg.peer.IsValid() {
		p.peerKnown.Store(true)
	}
	var wg sync.WaitGroup
	failed := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); failed <- p.adapterToPeer() }()
	go func() { defer wg.Done(); failed <- p.peerToAdapter() }()
	if !cfg.listening {
		wg.Add(1)
		go func() { defer wg.Done(); p.hello() }()
	}

	var result error
	select {
	case <-stop:
	case result = <-failed:
	}
	close(p.done)
	session.End()    // ends adapterToPeer's wait
	cfg.conn.Close() // ends peerToAdapter's read
	wg.Wait()
	c := &p.n
	fmt.Fprintf(out, "pipe %s stopped: %d packets to the peer, %d from the peer; dropped: %d before the peer was known, "+
		"%d from strangers, %d with the adapter's ring full, %d empty; %d UDP send errors\n",
		cfg.name, c.toPeer.Load(), c.fromPeer.Load(), c.dropNoPeer.Load(), c.dropForeign.Load(),
		c.dropRingFull.Load(), c.dropEmptyOrTooBig.Load(), c.sendErrors.Load())
	if capture != nil {
		session.End() // no capture call may follow Close
		if err := capture.Close(); err != nil && result == nil {
			result = err
		}
		rx, tx := capture.Packets()
		fmt.Fprintf(out, "captured %d packets (%d from the system, %d to it) in %s\n", rx+tx, rx, tx, cfg.pcap)
	}
	return result
}

type pipe struct {
	cfg     pipeConfig
	session *wintun.Session
	out     io.Writer
	done    chan struct{}

	peerKnown atomic.Bool
	peer      atomic.Pointer[netip.AddrPort] // set once, when listening
	answered  atomic.Bool                    // the connected peer has sent something
	warned    bool                           // a stranger's datagram was reported (peerToAdapter only)
	n         pipeCounters
}

// adapterToPeer sends every packet from the adapter in one datagram.
func (p *pipe) adapterToPeer() error {
	s := p.session
	for {
		pkt, err := s.ReceivePacket()
		if err == wintun.ErrNoMoreItems {
			if _, ok := <-s.ReadWaitEvent(); !ok {
				return p.sessionEnd()
			}
			continue
		}
		if err != nil {
			return p.sessionEnd()
		}
		switch {
		case !p.peerKnown.Load():
			p.n.dropNoPeer.Add(1)
		case p.cfg.listening:
			_, err = p.cfg.conn.WriteToUDPAddrPort(pkt, *p.peer.Load())
		default:
			_, err = p.cfg.conn.Write(pkt)
		}
		if err != nil {
			// Typically the peer is not there (yet): ICMP port unreachable. Packets
			// are datagrams; the next one may get through.
			p.n.sendErrors.Add(1)
		} else if p.peerKnown.Load() {
			p.n.toPeer.Add(1)
		}
		s.ReleaseReceivePacket(pkt)
	}
}

// sessionEnd says why the session stopped: nil when the pipe is stopping anyway.
func (p *pipe) sessionEnd() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	return fmt.Errorf("wintun pipe: adapter %s went away", p.cfg.name)
}

// peerToAdapter puts every datagram from the peer into the adapter.
func (p *pipe) peerToAdapter() error {
	buf := make([]byte, wintun.PacketSizeMax+1) // one more: a larger datagram shows as too big
	for {
		n, from, err := p.cfg.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-p.done:
				return nil
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// A connected socket reports the peer's ICMP errors here; not fatal.
			p.n.readErrors.Add(1)
			continue
		}
		if p.cfg.listening {
			switch {
			case p.cfg.peer.IsValid():
				// A dual-stack socket reports IPv4 senders as IPv4-mapped IPv6.
				if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != p.cfg.peer {
					p.dropStranger(from)
					continue
				}
			case !p.peerKnown.Load():
				p.peer.Store(&from)
				p.peerKnown.Store(true)
				fmt.Fprintf(p.out, "peer is %v\n", from)
			case *p.peer.Load() != from:
				p.dropStranger(from)
				continue
			}
		} else {
			p.answered.Store(true)
		}
		if n == 0 || n > wintun.PacketSizeMax { // hello, keepalive, or not a packet
			if n != 0 {
				p.n.dropEmptyOrTooBig.Add(1)
			}
			if p.cfg.listening && n == 0 {
				// Answer hellos so the connecting side knows it is heard.
				p.cfg.conn.WriteToUDPAddrPort(nil, from)
			}
			continue
		}
		out, err := p.session.AllocateSendPacket(n)
		if err == wintun.ErrBufferOverflow {
			p.n.dropRingFull.Add(1)
			continue
		}
		if err != nil {
			return p.sessionEnd()
		}
		copy(out, buf[:n])
		p.session.SendPacket(out)
		p.n.fromPeer.Add(1)
	}
}

// dropStranger counts a datagram from a source other than the peer, and reports the
// first one so that a wrong --peer shows at once; the rest are only counted, so that
// strangers cannot flood the output.
func (p *pipe) dropStranger(from netip.AddrPort) {
	p.n.dropForeign.Add(1)
	if !p.warned {
		p.warned = true
		fmt.Fprintf(p.out, "dropped a datagram from %v, not the peer (further ones are only counted)\n", from)
	}
}

// hello sends empty datagrams to the listening peer so that it learns this side's
// address: every second until it answers, then every pipeKeepalive.
func (p *pipe) hello() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		p.cfg.conn.Write(nil)
		if p.answered.Load() {
			t.Reset(pipeKeepalive)
		} else {
			t.Reset(time.Second)
		}
	}
}
