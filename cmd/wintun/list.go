//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"go.wintun.dev/wintun"
	"golang.org/x/sys/unix"
)

const listUsage = `usage: wintun list [--json]

Lists the adapters wintun created in this network namespace: name, index, LUID, GUID, tunnel
type, state, carrier, addresses, MTU, sessions attached (of every process) and the
kernel's counters. Interfaces other programs made are not shown.

`

// adapterInfo is what list and stats report about one adapter, read from netlink.
type adapterInfo struct {
	Name       string   `json:"name"`
	Index      int      `json:"index"`
	LUID       string   `json:"luid"` // hexadecimal: it does not fit a JSON number exactly
	GUID       string   `json:"guid"`
	Type       string   `json:"type"`
	AdminUp    bool     `json:"admin_up"`
	OperState  string   `json:"oper_state"`
	Carrier    bool     `json:"carrier"`
	Persistent bool     `json:"persistent"`
	Owner      *uint32  `json:"owner,omitempty"`
	Group      *uint32  `json:"group,omitempty"`
	MTU        int      `json:"mtu"`
	Addresses  []string `json:"addresses"`
	// Sessions counts the tun queues attached, by any process: one per session.
	Sessions int      `json:"sessions"`
	Counters counters `json:"counters"`
}

// counters are the kernel's link statistics of an adapter, by direction as the
// application sees it. On a tun device the kernel's "tx" is what the system sends out
// through the adapter, so what the application receives.
type counters struct {
	ToApplication   direction `json:"to_application"`   // kernel tx: ReceivePacket's side
	FromApplication direction `json:"from_application"` // kernel rx: SendPacket's side
}

type direction struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Dropped: to the application, packets the kernel could not queue (no session
	// attached, or the session's queue full); from it, packets the kernel refused.
	Dropped uint64 `json:"dropped"`
	Errors  uint64 `json:"errors"`
	// ErrorCauses are the kernel's detailed error counters, under the names
	// `ip -s -s link` prints.
	ErrorCauses map[string]uint64 `json:"error_causes"`
}

func countersOf(s *netlink.LinkStatistics) counters {
	if s == nil {
		return counters{}
	}
	return counters{
		ToApplication: direction{Packets: s.TxPackets, Bytes: s.TxBytes, Dropped: s.TxDropped, Errors: s.TxErrors,
			ErrorCauses: map[string]uint64{
				"aborted": s.TxAbortedErrors, "carrier": s.TxCarrierErrors, "fifo": s.TxFifoErrors,
				"heartbeat": s.TxHeartbeatErrors, "window": s.TxWindowErrors, "collisions": s.Collisions,
			}},
		FromApplication: direction{Packets: s.RxPackets, Bytes: s.RxBytes, Dropped: s.RxDropped, Errors: s.RxErrors,
			ErrorCauses: map[string]uint64{
				"length": s.RxLengthErrors, "over": s.RxOverErrors, "crc": s.RxCrcErrors,
				"frame": s.RxFrameErrors, "fifo": s.RxFifoErrors, "missed": s.RxMissedErrors,
			}},
	}
}

// inspect reads what the kernel knows of one of this library's adapters; OpenAdapter
// decides whether it is one (its alias check), so other interfaces are refused.
func inspect(name string) (adapterInfo, error) {
	a, err := wintun.OpenAdapter(name)
	if err != nil {
		return adapterInfo{}, err
	}
	defer a.Close() // an opened handle: releases nothing but itself
	link, err := netlink.LinkByIndex(a.Index())
	if err != nil {
		return adapterInfo{}, fmt.Errorf("wintun: adapter %q: %w", name, err)
	}
	attrs := link.Attrs()
	info := adapterInfo{
		Name: name, Index: a.Index(), LUID: fmt.Sprintf("%#x", a.LUID()), GUID: a.GUID().String(),
		Type: a.TunnelType(), AdminUp: attrs.Flags&net.FlagUp != 0, OperState: attrs.OperState.String(),
		Carrier: attrs.RawFlags&unix.IFF_LOWER_UP != 0, MTU: attrs.MTU, Addresses: []string{},
		Counters: countersOf(attrs.Statistics),
	}
	if tun, ok := link.(*netlink.Tuntap); ok {
		info.Persistent = !tun.NonPersist
		info.Sessions = tun.Queues
		// The kernel omits the owner and group when none is set, which the netlink
		// package reads as 0; root needs no ownership, so 0 is shown as none.
		if tun.Owner != 0 {
			info.Owner = &tun.Owner
		}
		if tun.Group != 0 {
			info.Group = &tun.Group
		}
	}
	addrs, err := a.Addresses()
	if err != nil {
		return adapterInfo{}, err
	}
	for _, p := range addrs {
		info.Addresses = append(info.Addresses, p.String())
	}
	return info, nil
}

// adapters lists this library's adapters in the caller's network namespace.
func adapters() ([]adapterInfo, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("wintun: list interfaces: %w", err)
	}
	var out []adapterInfo
	for _, l := range links {
		if l.Type() != "tuntap" || !strings.HasPrefix(l.Attrs().Alias, "wintun:") {
			continue
		}
		info, err := inspect(l.Attrs().Name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			continue // not ours after all (OpenAdapter's check is the authority)
		}
		out = append(out, info)
	}
	return out, nil
}

func cmdList(out io.Writer, args []string) error {
	c := newCommand("list", listUsage, out)
	asJSON := c.Bool("json", false, "print JSON")
	if _, err := c.parseArgs(args, 0); err != nil {
		return err
	}
	list, err := adapters()
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []adapterInfo{}
		}
		return writeJSON(out, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(out, "no wintun adapters in this network namespace (create one with `wintun create NAME`)")
		return nil
	}
	for i, a := range list {
		if i > 0 {
			fmt.Fprintln(out)
		}
		printAdapter(out, a)
	}
	return nil
}

func onOff(b bool, on, off string) string {
	if b {
		return on
	}
	return off
}

func printAdapter(out io.Writer, a adapterInfo) {
	fmt.Fprintf(out, "%s: index %d, LUID %s, GUID %s, type %q\n", a.Name, a.Index, a.LUID, a.GUID, a.Type)
	owner := ""
	switch {
	case a.Owner != nil && a.Group != nil:
		// The kernel lets a user without CAP_NET_ADMIN attach only if both match.
		owner = fmt.Sprintf(", owner uid %d and group gid %d (a user needs both)", *a.Owner, *a.Group)
	case a.Owner != nil:
		owner = fmt.Sprintf(", owner uid %d", *a.Owner)
	case a.Group != nil:
		owner = fmt.Sprintf(", group gid %d", *a.Group)
	}
	fmt.Fprintf(out, "  admin %s, oper state %s, carrier %s, %s%s\n", onOff(a.AdminUp, "up", "down"), a.OperState,
		onOff(a.Carrier, "on", "off"), onOff(a.Persistent, "persistent", "lives while its creating process runs"), owner)
	addrs := "none"
	if len(a.Addresses) > 0 {
		addrs = strings.Join(a.Addresses, ", ")
	}
	fmt.Fprintf(out, "  MTU %d, %d session(s) attached, addresses %s\n", a.MTU, a.Sessions, addrs)
	c := a.Counters
	fmt.Fprintf(out, "  system -> app: %d packets, %s, %d dropped, %d errors\n",
		c.ToApplication.Packets, humanBytes(c.ToApplication.Bytes), c.ToApplication.Dropped, c.ToApplication.Errors)
	fmt.Fprintf(out, "  app -> system: %d packets, %s, %d dropped, %d errors\n",
		c.FromApplication.Packets, humanBytes(c.FromApplication.Bytes), c.FromApplication.Dropped, c.FromApplication.Errors)
}

// lookupError says what to do when adapter name could not be inspected: it does not
// exist, or it is an interface wintun did not create.
func lookupError(cmd, name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return missingAdapter(cmd, name, err)
	}
	if l, lerr := netlink.LinkByName(name); lerr == nil && (l.Type() != "tuntap" || !strings.HasPrefix(l.Attrs().Alias, "wintun:")) {
		return userErrorf(err, "wintun %s: interface %s is not one of wintun's adapters: wintun uses only "+
			"the adapters it created (`wintun list` lists them)", cmd, name)
	}
	return err
}

// prefixStrings formats prefixes for output.
func prefixStrings(ps []netip.Prefix) []string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return s
}
