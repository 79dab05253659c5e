package wintun

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Adapter is a layer 3 virtual network card: on Linux, a multiqueue tun device.
//
// The handle returned by CreateAdapter owns the device: the device lives while that
// handle is open and is removed by Close or when the creating process dies (unless it
// was created WithPersist). A handle from OpenAdapter only gives access to it.
//
// All methods are safe for concurrent use. Configuration methods act in the network
// namespace of the calling goroutine's thread, where the adapter must be.
type Adapter struct {
	name       string
	tunnelType string
	guid       GUID
	index      int
	stats      stats

	// control is the creator's queue, detached at once: it receives no packet but
	// keeps a non-persistent device alive exactly as long as it is open.
	control *os.File

	mu       sync.Mutex
	closed   bool
	sessions map[*Session]struct{}
}

// The alias of every adapter this library creates is aliasPrefix, the GUID, ':' and
// the tunnel type; OpenAdapter and Uninstall touch no interface without it.
const aliasPrefix = "wintun:"

func formatAlias(g GUID, tunnelType string) string {
	return aliasPrefix + g.String() + ":" + tunnelType
}

func parseAlias(alias string) (g GUID, tunnelType string, ok bool) {
	rest, found := strings.CutPrefix(alias, aliasPrefix)
	if !found || len(rest) < 37 || rest[36] != ':' {
		return g, "", false
	}
	g, err := ParseGUID(rest[:36])
	return g, rest[37:], err == nil
}

// tunFlags are the device flags. IFF_VNET_HDR is fixed when the device is created
// (later queues cannot change it), so every adapter has it, and each session decides
// with the offload mask whether the kernel may send it super-packets (WithGSO).
const tunFlags = unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE | unix.IFF_VNET_HDR

// openQueue opens /dev/net/tun and attaches it to the tun device name as one more
// queue, creating the device if it does not exist.
func openQueue(name string, flags uint16, nonblock bool) (int, error) {
	mode := unix.O_RDWR | unix.O_CLOEXEC
	if nonblock {
		mode |= unix.O_NONBLOCK
	}
	fd, err := unix.Open("/dev/net/tun", mode, 0)
	if err != nil {
		return -1, fmt.Errorf("wintun: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(flags)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		switch {
		case errors.Is(err, unix.EBUSY):
			return -1, fmt.Errorf("wintun: adapter %q: %w", name, fs.ErrExist)
		case errors.Is(err, unix.EPERM):
			return -1, fmt.Errorf("wintun: adapter %q: %w: needs CAP_NET_ADMIN (run as root), or an adapter created WithOwner(this user) or WithGroup(a group of this user); with both set, the user must be the owner and in the group", name, err)
		}
		return -1, fmt.Errorf("wintun: TUNSETIFF %q: %w", name, err)
	}
	return fd, nil
}

// CreateAdapter creates an adapter named name and brings it up, with its carrier off
// until a session starts. tunnelType and the GUID (random when requestedGUID is nil)
// are recorded in the interface's alias, so that OpenAdapter, Uninstall and other
// tools can recognize it. An existing interface of that name gives an error that
// satisfies errors.Is(err, fs.ErrExist).
//
// No other user can attach to the device before its owner and group are set: it is
// created in a private network namespace and moved into the caller's, which needs
// CAP_SYS_ADMIN. A creator without it creates the device in place, and if another
// process attached to it or changed its owner, group or persistence in the moment
// before they were set, CreateAdapter deletes the device and returns an error that
// satisfies errors.Is(err, syscall.EBUSY). In place, an intruder who attached and
// left at once goes unnoticed, together with any setting it made on the device.
func CreateAdapter(name, tunnelType string, requestedGUID *GUID, opts ...Option) (*Adapter, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := checkTunnelType(tunnelType); err != nil {
		return nil, err
	}
	cfg := config{owner: -1, group: -1}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.owner < 0 && cfg.group < 0 {
		// The kernel lets anyone who can open /dev/net/tun (mode 0666 on most
		// systems) attach to a tun device with neither owner nor group: make the
		// creator its owner, so that everyone else needs CAP_NET_ADMIN.
		cfg.owner = os.Geteuid()
	}
	if cfg.mtu != 0 && (cfg.mtu < 68 || cfg.mtu > PacketSizeMax) {
		return nil, fmt.Errorf("wintun: invalid MTU %d: want 68 to %d", cfg.mtu, PacketSizeMax)
	}
	var guid GUID
	if requestedGUID != nil {
		guid = *requestedGUID
	} else {
		var err error
		if guid, err = newGUID(); err != nil {
			return nil, err
		}
	}
	if _, err := netlink.LinkByName(name); err == nil {
		return nil, fmt.Errorf("wintun: adapter %q: %w", name, fs.ErrExist)
	}

	fd, err := createDevice(name, &cfg)
	if err != nil {
		return nil, err
	}
	a := &Adapter{name: name, tunnelType: tunnelType, guid: guid, sessions: map[*Session]struct{}{}}
	fail := func(what string, err error) (*Adapter, error) {
		if a.index != 0 {
			// Deleting detaches every queue, an intruder's too.
			netlink.LinkDel(a.link())
		}
		discardDevice(fd, &cfg)
		return nil, fmt.Errorf("wintun: create adapter %q: %s: %w", name, what, err)
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fail("look up", err)
	}
	a.index = link.Attrs().Index
	if err := checkSoleQueue(a.index, &cfg); err != nil {
		return fail("check", err)
	}
	if err := resetDevice(fd); err != nil {
		return fail("check", err)
	}
	if err := netlink.LinkSetAlias(link, formatAlias(guid, tunnelType)); err != nil {
		return fail("set alias", err)
	}
	if cfg.mtu != 0 {
		if err := netlink.LinkSetMTU(link, cfg.mtu); err != nil {
			return fail("set MTU", err)
		}
	}
	// Super-packets must fit a ring record; sessions without CAP_NET_ADMIN (owner or
	// group) could not set this limit themselves.
	if err := netlink.LinkSetGSOMaxSize(link, gsoMaxSize); err != nil {
		return fail("limit the super-packet size", err)
	}
	if err := setNoQueue(link); err != nil {
		return fail("no qdisc", err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fail("set up", err)
	}
	ifr, _ := unix.NewIfreq("")
	ifr.SetUint16(unix.IFF_DETACH_QUEUE)
	if err := unix.IoctlIfreq(fd, unix.TUNSETQUEUE, ifr); err != nil {
		return fail("detach control queue", err)
	}
	if !cfg.persist {
		a.control = os.NewFile(uintptr(fd), "/dev/net/tun")
	} else {
		unix.Close(fd)
	}
	logInfo("wintun: adapter created", "name", name, "index", a.index, "guid", guid.String(), "type", tunnelType)
	return a, nil
}

// lookup finds this library's adapter name in the caller's network namespace.
func lookup(name string) (netlink.Link, GUID, string, error) {
	if err := checkName(name); err != nil {
		return nil, GUID{}, "", err
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, GUID{}, "", fmt.Errorf("wintun: adapter %q: %w", name, fs.ErrNotExist)
		}
		return nil, GUID{}, "", fmt.Errorf("wintun: adapter %q: %w", name, err)
	}
	guid, tunnelType, ok := parseAlias(link.Attrs().Alias)
	if !ok || link.Type() != "tuntap" {
		return nil, GUID{}, "", fmt.Errorf("wintun: interface %q was not created by this library; refusing to use it", name)
	}
	return link, guid, tunnelType, nil
}

// OpenAdapter opens an existing adapter created by this library, by name, in the
// caller's network namespace. Closing the handle it returns ends its sessions and
// leaves the adapter in place.
func OpenAdapter(name string) (*Adapter, error) {
	link, guid, tunnelType, err := lookup(name)
	if err != nil {
		return nil, err
	}
	return &Adapter{name: name, tunnelType: tunnelType, guid: guid, index: link.Attrs().Index,
		sessions: map[*Session]struct{}{}}, nil
}

// Close ends the handle's sessions and, if the handle created the adapter without
// WithPersist, removes the adapter: sessions that other handles hold on it then report
// ErrAdapterGone. Close is idempotent.
func (a *Adapter) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	sessions := make([]*Session, 0, len(a.sessions))
	for s := range a.sessions {
		sessions = append(sessions, s)
	}
	a.mu.Unlock()
	for _, s := range sessions {
		s.End()
	}
	if a.control == nil {
		return nil
	}
	var err error
	// Delete the link, which detaches every queue of every process; if it has moved
	// to another namespace, closing the control fd removes it once the sessions
	// there end.
	if link, guid, _, lerr := lookup(a.name); lerr == nil && guid == a.guid {
		if derr := netlink.LinkDel(link); derr != nil && !errors.Is(derr, unix.ENODEV) {
			err = fmt.Errorf("wintun: delete adapter %q: %w", a.name, derr)
		}
	}
	if cerr := a.control.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("wintun: close adapter %q: %w", a.name, cerr)
	}
	logInfo("wintun: adapter closed", "name", a.name)
	return err
}

// Name returns the interface name the adapter was created or opened with.
func (a *Adapter) Name() string { return a.name }

// TunnelType returns the tunnel type recorded at creation.
func (a *Adapter) TunnelType() string { return a.tunnelType }

// GUID returns the adapter's stable identity.
func (a *Adapter) GUID() GUID { return a.guid }

// Index returns the kernel's interface index, in the namespace where the adapter was
// created or opened.
func (a *Adapter) Index() int { return a.index }

// LUID returns the adapter's locally unique id in Windows' NET_LUID layout: interface
// type 53 (IF_TYPE_PROP_VIRTUAL) in the top 16 bits and the interface index in the 24
// bits below them.
func (a *Adapter) LUID() uint64 { return 53<<48 | uint64(a.index&0xFFFFFF)<<24 }

// Stats returns the counters of all the sessions this handle has run, and the
// kernel's drops for the adapter, which it reads through netlink.
func (a *Adapter) Stats() Stats {
	st := a.stats.snapshot()
	st.ReceiveDropsKernel = a.kernelDrops()
	return st
}

func (a *Adapter) link() netlink.Link {
	return &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Index: a.index, Name: a.name}}
}

// MTU returns the adapter's current MTU.
func (a *Adapter) MTU() (int, error) {
	link, err := netlink.LinkByIndex(a.index)
	if err != nil {
		return 0, fmt.Errorf("wintun: adapter %q: %w", a.name, err)
	}
	return link.Attrs().MTU, nil
}

// SetMTU sets the adapter's MTU, from 68 to PacketSizeMax.
func (a *Adapter) SetMTU(mtu int) error {
	if mtu < 68 || mtu > PacketSizeMax {
		return fmt.Errorf("wintun: invalid MTU %d: want 68 to %d", mtu, PacketSizeMax)
	}
	if err := netlink.LinkSetMTU(a.link(), mtu); err != nil {
		return fmt.Errorf("wintun: set MTU of %q: %w", a.name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) (*net.IPNet, error) {
	p, err := plainPrefix(p)
	if err != nil {
		return nil, err
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, nil
}

// AddAddress gives the system side of the adapter the address p.Addr() on the network
// p; an address already there gives an error satisfying errors.Is(err, fs.ErrExist).
// IPv6 addresses skip duplicate address detection (a layer 3 link has no neighbours
// to ask), so they are usable at once, even while no session runs.
func (a *Adapter) AddAddress(p netip.Prefix) error {
	n, err := ipNet(p)
	if err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: n}
	if p.Addr().Is6() && !p.Addr().Is4In6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := netlink.AddrAdd(a.link(), addr); err != nil {
		return fmt.Errorf("wintun: add address %v to %q: %w", p, a.name, err)
	}
	return nil
}

// RemoveAddress removes an address added with AddAddress.
func (a *Adapter) RemoveAddress(p netip.Prefix) error {
	n, err := ipNet(p)
	if err != nil {
		return err
	}
	if err := netlink.AddrDel(a.link(), &netlink.Addr{IPNet: n}); err != nil {
		return fmt.Errorf("wintun: remove address %v from %q: %w", p, a.name, err)
	}
	return nil
}

// Addresses returns the adapter's IPv4 and IPv6 addresses with their prefix lengths.
func (a *Adapter) Addresses() ([]netip.Prefix, error) {
	addrs, err := netlink.AddrList(a.link(), netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("wintun: addresses of %q: %w", a.name, err)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok {
			continue
		}
		bits, _ := ad.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), bits))
	}
	return out, nil
}

func (a *Adapter) route(p netip.Prefix) (*netlink.Route, error) {
	p, err := plainPrefix(p)
	if err != nil {
		return nil, err
	}
	n, err := ipNet(p.Masked())
	if err != nil {
		return nil, err
	}
	return &netlink.Route{LinkIndex: a.index, Dst: n, Scope: netlink.SCOPE_LINK}, nil
}

// AddRoute routes the network p through the adapter.
func (a *Adapter) AddRoute(p netip.Prefix) error {
	r, err := a.route(p)
	if err != nil {
		return err
	}
	if err := netlink.RouteAdd(r); err != nil {
		return fmt.Errorf("wintun: add route %v via %q: %w", p, a.name, err)
	}
	return nil
}

// RemoveRoute removes a route added with AddRoute.
func (a *Adapter) RemoveRoute(p netip.Prefix) error {
	r, err := a.route(p)
	if err != nil {
		return err
	}
	if err := netlink.RouteDel(r); err != nil {
		return fmt.Errorf("wintun: remove route %v via %q: %w", p, a.name, err)
	}
	return nil
}

// Uninstall removes this library's adapters that nothing uses any more from the
// caller's network namespace: persistent adapters with no session attached. Adapters
// that a process still holds are left in place and named in an error that satisfies
// errors.Is(err, syscall.EBUSY). Interfaces this library did not create are never
// touched.
func Uninstall() error {
	_, busy, err := UninstallReport()
	if len(busy) > 0 {
		err = errors.Join(err, fmt.Errorf("wintun: adapters in use, left in place: %s: %w", strings.Join(busy, ", "), syscall.EBUSY))
	}
	return err
}

// UninstallReport is Uninstall that says what it did: removed lists the adapters it
// deleted, inUse those it left because a process still holds them (a session is
// attached, or the adapter is not persistent and so lives only while its creator
// runs). err reports failures other than adapters in use.
func UninstallReport() (removed, inUse []string, err error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("wintun: uninstall: %w", err)
	}
	var errs []error
	for _, l := range links {
		tun, ok := l.(*netlink.Tuntap)
		if _, _, ours := parseAlias(l.Attrs().Alias); !ok || !ours {
			continue
		}
		// A tun device that is not persistent exists only while some process holds
		// one of its fds; Queues counts the attached ones, of every process.
		if tun.NonPersist || tun.Queues > 0 {
			inUse = append(inUse, tun.Name)
			continue
		}
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("wintun: uninstall %q: %w", tun.Name, err))
			continue
		}
		removed = append(removed, tun.Name)
	}
	return removed, inUse, errors.Join(errs...)
}

// RunningVersion returns the version of the kernel's tun driver as major<<16 | minor,
// read with the ethtool driver-info call from a tun device of the caller's network
// namespace, or from a temporary one when there is none.
func RunningVersion() (uint32, error) {
	name := ""
	links, _ := netlink.LinkList()
	for _, l := range links {
		if l.Type() == "tuntap" {
			name = l.Attrs().Name
			break
		}
	}
	if name == "" {
		fd, err := openQueue("", unix.IFF_TUN|unix.IFF_NO_PI, false)
		if err != nil {
			return 0, fmt.Errorf("wintun: tun driver not available: %w", err)
		}
		defer unix.Close(fd)
		ifr, _ := unix.NewIfreq("")
		if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
			return 0, fmt.Errorf("wintun: TUNGETIFF: %w", err)
		}
		name = ifr.Name()
	}
	sock, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("wintun: driver version: %w", err)
	}
	defer unix.Close(sock)
	info, err := unix.IoctlGetEthtoolDrvinfo(sock, name)
	if err != nil {
		return 0, fmt.Errorf("wintun: driver version of %q: %w", name, err)
	}
	version := unix.ByteSliceToString(info.Version[:])
	major, minor, _ := strings.Cut(version, ".")
	ma, err1 := strconv.ParseUint(major, 10, 16)
	mi, err2 := strconv.ParseUint(minor, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("wintun: unexpected tun driver version %q", version)
	}
	return uint32(ma)<<16 | uint32(mi), nil
}
