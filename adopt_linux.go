package wintun

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// AdoptSession starts a session on f, a queue of a tun device that the program did
// not open itself but was handed (by Android's VpnService, a privileged parent,
// systemd's file-descriptor store), with a pair of rings of capacity bytes each and
// the same calls as a session from StartSession.
//
// f must be attached to a layer 3 tun device without packet information: one set up
// with IFF_TUN and IFF_NO_PI. A TAP device gives an error satisfying
// errors.Is(err, errors.ErrUnsupported), and so does a device whose packets carry
// packet information, if netlink finds the device: the queue itself does not tell
// (TUNGETIFF reports IFF_NO_PI's bit on every tun device), and a device that netlink
// does not find (an Android app may not look links up) is taken to be without it. A file
// that is not a tun queue gives the kernel's error: ENOTTY for a file that is no tun
// queue, EBADFD for one whose device was never set up or is gone. A queue the host
// detached (IFF_DETACH_QUEUE) is attached again. f may be blocking: the
// session switches the open file to non-blocking mode, which other descriptors of the
// same open file (the host's, say) share.
//
// The session takes f over: on success AdoptSession closes f, keeps a descriptor of
// its own for the same queue, and End closes that one; the caller must not use f
// afterwards. On error f stays open and the caller's.
//
// Offloads depend on the device. With IFF_VNET_HDR every packet on the queue carries
// a virtio_net_hdr: the session sets the device's offloads as StartSession does
// (device-wide, for the host's other queues too), splits the super-packets the kernel
// hands over, coalesces what it writes (WithCoalescing), and accepts WithGSO. The
// header must have its default size, GSOHeaderLen bytes; another size
// (TUNSETVNETHDRSZ) gives an error satisfying errors.Is(err, errors.ErrUnsupported).
// Without IFF_VNET_HDR the queue moves ordinary packets only: WithGSO gives that
// error, nothing is coalesced, and the session reads through Go's poller even where
// WithIOUring asks for io_uring reads, which need the header (logged).
//
// The session looks the device up through netlink: in the device's own network
// namespace if the kernel tells which that is (TUNGETDEVNETNS needs CAP_NET_ADMIN),
// else by name in the network namespace of the calling goroutine's thread (where
// another tun device of the same name would be taken for it). Only a
// device in the caller's namespace gets its offloads on and its kernel queue
// lengthened (see StartSession); elsewhere, or where it is not found, offloads are
// off.
//
// The device stays the host's. The session leaves its carrier as it is (a new tun
// device's carrier is on; switching it needs CAP_NET_ADMIN, which an adopter often
// lacks), and its addresses, routes and persistence, and End deletes nothing: it
// closes the session's descriptor, which removes the device if that was the last
// descriptor of a device that is not persistent. (The kernel lets go of the queue once
// it has torn the session's io_uring rings down, which it does asynchronously, a
// moment after End returns.) The session belongs to no Adapter: its
// statistics are its own.
func AdoptSession(f *os.File, capacity uint32, opts ...SessionOption) (*Session, error) {
	if err := checkCapacity(capacity); err != nil {
		return nil, err
	}
	if f == nil {
		return nil, fmt.Errorf("wintun: adopt session: nil file: %w", os.ErrInvalid)
	}
	var cfg sessionConfig
	for _, o := range opts {
		o(&cfg)
	}
	fd, err := dupFile(f)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Session, error) {
		unix.Close(fd)
		return nil, err
	}
	name, vnetHdr, err := checkAdoptable(fd, &cfg)
	if err != nil {
		return fail(err)
	}
	dev, local := adoptedDevice(fd, name, vnetHdr)
	if err := checkNoPI(dev, name); err != nil {
		return fail(err)
	}
	// A queue detached with IFF_DETACH_QUEUE still names its device but receives
	// nothing: attach it again. The kernel answers EINVAL for a queue that is
	// attached already, and for a device that is not multiqueue.
	attach, err := unix.NewIfreq("")
	if err == nil {
		attach.SetUint16(unix.IFF_ATTACH_QUEUE)
		err = unix.IoctlIfreq(fd, unix.TUNSETQUEUE, attach)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) {
		return fail(fmt.Errorf("wintun: adopt session on %q: attach the detached queue: %w", name, err))
	}
	var link netlink.Link // the device, where the session may configure it
	if local && dev != nil {
		link = dev
	}
	uso := false
	switch {
	case !vnetHdr:
		// The offloads of a device without the header are the host's business: the
		// kernel needs no mask to hand over ordinary packets.
	case link != nil:
		if uso, err = setOffload(fd, link, cfg.gso); err != nil {
			return fail(fmt.Errorf("wintun: adopt session on %q: %w", name, err))
		}
		raiseKernelQueue(link, capacity)
	default:
		// Without the device's MTU and super-packet limit, super-packets might
		// outgrow a ring record.
		logInfo("wintun: adopted device not found in the caller's network namespace; offloads off", "adapter", name)
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0); err != nil {
			return fail(fmt.Errorf("wintun: adopt session on %q: offloads off: %w", name, err))
		}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail(fmt.Errorf("wintun: adopt session on %q: non-blocking mode: %w", name, err))
	}
	a := &Adapter{name: name, sessions: map[*Session]struct{}{}}
	if link != nil {
		a.index = link.Attrs().Index
	}
	s, err := newSession(a, fd, capacity, &cfg, vnetHdr, uso)
	if err != nil {
		return nil, err
	}
	s.adopted = true
	a.sessions[s] = struct{}{}
	f.Close() // the session's own descriptor keeps the queue
	s.start()
	logInfo("wintun: session adopted", "adapter", name, "vnet_hdr", vnetHdr)
	return s, nil
}

// dupFile returns a new close-on-exec descriptor of f's open file.
func dupFile(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("wintun: adopt session: %w", err)
	}
	fd := -1
	if cerr := rc.Control(func(orig uintptr) {
		fd, err = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	}); cerr != nil {
		return -1, fmt.Errorf("wintun: adopt session: %w", cerr)
	}
	if err != nil {
		return -1, fmt.Errorf("wintun: adopt session: duplicate the descriptor: %w", err)
	}
	return fd, nil
}

// checkAdoptable checks that the queue fd suits a session with cfg, as far as the
// queue itself tells, and returns the name of its device and whether its packets
// carry a virtio_net_hdr. Whether they carry packet information it cannot tell:
// TUNGETIFF reports IFF_NO_PI's bit set on every tun device, where it means
// IFF_NOFILTER (no socket filter attached); checkNoPI asks netlink.
func checkAdoptable(fd int, cfg *sessionConfig) (name string, vnetHdr bool, err error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", false, err
	}
	if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
		what := "not a tun queue"
		if errors.Is(err, unix.EBADFD) {
			what = "a tun file with no device (never set up, or the device is gone)"
		}
		return "", false, fmt.Errorf("wintun: adopt session: %s: %w", what, err)
	}
	name, flags := ifr.Name(), ifr.Uint16()
	switch {
	case flags&unix.IFF_TAP != 0:
		return "", false, unsupported(name, "a TAP device (layer 2), want a TUN device")
	case flags&unix.IFF_TUN == 0:
		return "", false, unsupported(name, fmt.Sprintf("not a TUN device (flags %#x)", flags))
	}
	vnetHdr = flags&unix.IFF_VNET_HDR != 0
	if !vnetHdr {
		if cfg.gso {
			return "", false, unsupported(name, "WithGSO needs a device set up with IFF_VNET_HDR")
		}
		return name, false, nil
	}
	size, err := unix.IoctlGetInt(fd, unix.TUNGETVNETHDRSZ)
	if err != nil {
		return "", false, fmt.Errorf("wintun: adopt session on %q: TUNGETVNETHDRSZ: %w", name, err)
	}
	if size != GSOHeaderLen {
		return "", false, unsupported(name, fmt.Sprintf("virtio_net_hdr of %d bytes, want %d", size, GSOHeaderLen))
	}
	return name, true, nil
}

func unsupported(name, why string) error {
	return fmt.Errorf("wintun: adopt session on %q: %s: %w", name, why, errors.ErrUnsupported)
}

// checkNoPI refuses a device whose packets carry packet information, if netlink
// found it (t not nil); a device it did not find is taken to be without, as hosts
// that hand queues over set them up (Android's VpnService does).
func checkNoPI(t *netlink.Tuntap, name string) error {
	if t != nil && t.Flags&netlink.TUNTAP_NO_PI == 0 {
		return unsupported(name, "its packets carry packet information (set up without IFF_NO_PI)")
	}
	return nil
}

// adoptedDevice looks up the device of the queue fd: in its own network namespace
// where the kernel says which that is (TUNGETDEVNETNS needs CAP_NET_ADMIN), and else
// by name in the caller's, where a parent that hands a queue to its child has usually
// created it; a device there that does not match what the queue tells is not it.
// local reports whether the device is in the network namespace of the calling
// goroutine's thread, where the session may configure it by name and index.
func adoptedDevice(fd int, name string, vnetHdr bool) (t *netlink.Tuntap, local bool) {
	runtime.LockOSThread() // the namespace compared is the one the lookups use
	defer runtime.UnlockOSThread()
	var link netlink.Link
	var err error
	if nsfd, nerr := unix.IoctlRetInt(fd, unix.TUNGETDEVNETNS); nerr == nil {
		defer unix.Close(nsfd)
		var dev, mine unix.Stat_t
		if unix.Fstat(nsfd, &dev) == nil && unix.Stat("/proc/thread-self/ns/net", &mine) == nil {
			local = dev.Dev == mine.Dev && dev.Ino == mine.Ino
		}
		var h *netlink.Handle
		if h, err = netlink.NewHandleAt(netns.NsHandle(nsfd), unix.NETLINK_ROUTE); err != nil {
			return nil, false
		}
		defer h.Close()
		link, err = h.LinkByName(name)
	} else {
		local = true
		link, err = netlink.LinkByName(name)
	}
	t, ok := link.(*netlink.Tuntap)
	if err != nil || !ok || t.Mode != netlink.TUNTAP_MODE_TUN || (t.Flags&netlink.TUNTAP_VNET_HDR != 0) != vnetHdr {
		return nil, false
	}
	return t, local
}
