package wintun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"runtime"
	"sync/atomic"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// A tun device has no owner and no group from TUNSETIFF until TUNSETOWNER or
// TUNSETGROUP: in that window any user who can open /dev/net/tun may attach a queue
// to it by name, and an attached user may then make itself the owner. The kernel
// looks a device up by name in the caller's network namespace only, so CreateAdapter
// creates the device in a network namespace of its own that nobody else can enter,
// sets the owner, the group and persistence there, and only then moves the device
// into the caller's namespace.
//
// Making a network namespace needs CAP_SYS_ADMIN, which a creator with CAP_NET_ADMIN
// alone lacks. It then creates the device in place, checks afterwards that no other
// queue is attached and that owner, group and persistence are still its own, and
// undoes the other settings an intruder could have made and left (resetDevice).

// createInPrivateNamespace is off only in tests of the in-place creation.
var createInPrivateNamespace atomic.Bool

func init() { createInPrivateNamespace.Store(true) }

// errTakenOver reports a device that another process attached to or reconfigured
// while CreateAdapter created it in place.
var errTakenOver = fmt.Errorf("another process attached to the device while it was created: %w", syscall.EBUSY)

// createDevice creates the tun device name in the caller's network namespace and
// returns its first queue, attached, with the carrier off and the owner, group and
// persistence of cfg.
func createDevice(name string, cfg *config) (int, error) {
	if createInPrivateNamespace.Load() {
		fd, err := createElsewhere(name, cfg)
		if err == nil || !errors.Is(err, errNoNamespace) {
			return fd, err
		}
		logInfo("wintun: no private network namespace for the creation; creating in place and checking for intruders", "name", name, "error", err)
	}
	fd, err := openQueue(name, tunFlags|unix.IFF_TUN_EXCL, false)
	if err != nil {
		return -1, err
	}
	if err := configureDevice(fd, name, cfg); err != nil {
		discardDevice(fd, cfg)
		return -1, err
	}
	return fd, nil
}

// errNoNamespace is the failure to make a network namespace.
var errNoNamespace = errors.New("wintun: cannot make a private network namespace")

// createElsewhere creates the device in a new network namespace and moves it into the
// caller's.
func createElsewhere(name string, cfg *config) (int, error) {
	target, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("%w: %w", errNoNamespace, err)
	}
	defer unix.Close(target)
	type result struct {
		fd  int
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			c <- result{-1, fmt.Errorf("%w: %w", errNoNamespace, err)}
			return
		}
		defer unix.Close(home)
		fd, err := createAndMove(name, cfg, target)
		// The thread goes back to its own namespace (not necessarily the
		// caller's) before it may run other goroutines; if it cannot, it stays
		// locked and the runtime ends it with this goroutine.
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		c <- result{fd, err}
	}()
	r := <-c
	return r.fd, r.err
}

// createAndMove creates the device in a new network namespace, on the calling
// thread, and moves it into the namespace target.
func createAndMove(name string, cfg *config, target int) (int, error) {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return -1, fmt.Errorf("%w: %w", errNoNamespace, err)
	}
	// The queue's fd keeps this namespace while it is open; the device is the
	// only thing in it that anyone can reach, and it moves out.
	fd, err := openQueue(name, tunFlags, false)
	if err != nil {
		return -1, err
	}
	if err := configureDevice(fd, name, cfg); err != nil {
		discardDevice(fd, cfg)
		return -1, err
	}
	link, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetNsFd(link, target)
	}
	if err != nil {
		discardDevice(fd, cfg)
		if errors.Is(err, unix.EEXIST) {
			err = fs.ErrExist
		}
		return -1, fmt.Errorf("wintun: create adapter %q: move it into the caller's network namespace: %w", name, err)
	}
	return fd, nil
}

// configureDevice switches the carrier off and sets owner, group and persistence.
func configureDevice(fd int, name string, cfg *config) error {
	set := func(what string, req uint, v int) error {
		if err := unix.IoctlSetInt(fd, req, v); err != nil {
			return fmt.Errorf("wintun: create adapter %q: %s: %w", name, what, err)
		}
		return nil
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETCARRIER, 0); err != nil {
		return fmt.Errorf("wintun: create adapter %q: carrier off: %w", name, err)
	}
	if cfg.owner >= 0 {
		if err := set("set owner", unix.TUNSETOWNER, cfg.owner); err != nil {
			return err
		}
	}
	if cfg.group >= 0 {
		if err := set("set group", unix.TUNSETGROUP, cfg.group); err != nil {
			return err
		}
	}
	if cfg.persist {
		return set("persist", unix.TUNSETPERSIST, 1)
	}
	return nil
}

// discardDevice closes the creator's queue, which removes the device unless another
// queue holds it (removeDevice then deletes it).
func discardDevice(fd int, cfg *config) {
	if cfg.persist {
		unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 0)
	}
	unix.Close(fd)
}

// checkSoleQueue makes sure that nobody else holds the new device at index: exactly
// one queue (the creator's, attached), then owner, group and persistence as set. The
// two are read in that order, in two requests: an intruder must hold a queue to
// change the owner, so one that changes it and leaves before the count shows in the
// owner read after it.
func checkSoleQueue(index int, cfg *config) error {
	t, err := readTun(index)
	if err != nil {
		return err
	}
	if t.queues != 1 || t.disabled != 0 {
		return fmt.Errorf("%d queues attached and %d detached, want only the creator's: %w", t.queues, t.disabled, errTakenOver)
	}
	if t, err = readTun(index); err != nil {
		return err
	}
	if t.owner != int64(cfg.owner) || t.group != int64(cfg.group) || t.persist != cfg.persist {
		return fmt.Errorf("owner %d, group %d (-1: none), persistent %v: %w", t.owner, t.group, t.persist, errTakenOver)
	}
	return nil
}

// tunState is what the kernel reports of a tun device; owner and group are -1 when
// not set (netlink leaves their attributes out, which the netlink package reads as
// 0, root's).
type tunState struct {
	queues, disabled int
	owner, group     int64
	persist          bool
}

// readTun asks the kernel for the tun attributes of the interface at index, in the
// caller's network namespace.
func readTun(index int) (tunState, error) {
	t := tunState{owner: -1, group: -1}
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return t, fmt.Errorf("interface %d: %w", index, err)
	}
	if len(msgs) != 1 || len(msgs[0]) < unix.SizeofIfInfomsg {
		return t, fmt.Errorf("interface %d: unexpected netlink answer", index)
	}
	data, err := nestedAttr(msgs[0][unix.SizeofIfInfomsg:], unix.IFLA_LINKINFO, nl.IFLA_INFO_DATA)
	if err != nil {
		return t, fmt.Errorf("interface %d is not a tun device: %w", index, err)
	}
	attrs, err := nl.ParseRouteAttr(data)
	if err != nil {
		return t, err
	}
	for _, a := range attrs {
		switch a.Attr.Type & nl.NLA_TYPE_MASK {
		case nl.IFLA_TUN_OWNER:
			t.owner = int64(binary.NativeEndian.Uint32(a.Value))
		case nl.IFLA_TUN_GROUP:
			t.group = int64(binary.NativeEndian.Uint32(a.Value))
		case nl.IFLA_TUN_PERSIST:
			t.persist = a.Value[0] != 0
		case nl.IFLA_TUN_NUM_QUEUES:
			t.queues = int(binary.NativeEndian.Uint32(a.Value))
		case nl.IFLA_TUN_NUM_DISABLED_QUEUES:
			t.disabled = int(binary.NativeEndian.Uint32(a.Value))
		}
	}
	return t, nil
}

// nestedAttr returns the value of the attribute at the path of types in b.
func nestedAttr(b []byte, path ...uint16) ([]byte, error) {
	for _, typ := range path {
		attrs, err := nl.ParseRouteAttr(b)
		if err != nil {
			return nil, err
		}
		b = nil
		for _, a := range attrs {
			if a.Attr.Type&nl.NLA_TYPE_MASK == typ {
				b = a.Value
				break
			}
		}
		if b == nil {
			return nil, fmt.Errorf("no netlink attribute %d", typ)
		}
	}
	return b, nil
}

// resetDevice undoes, through the creator's queue, every device-wide setting that
// an intruder attached in the moment before the owner was set could have made and
// that checkSoleQueue cannot see: the virtio header's size and byte order, the link
// type, eBPF steering and filter programs, the send buffer and the offloads. Once
// checkSoleQueue has passed nobody else can attach, so nothing can change them again.
func resetDevice(fd int) error {
	for _, r := range []struct {
		what string
		err  error
	}{
		{"virtio header size", unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, GSOHeaderLen)},
		{"virtio header little endian", unix.IoctlSetPointerInt(fd, unix.TUNSETVNETLE, 0)},
		{"link type", unix.IoctlSetInt(fd, unix.TUNSETLINK, unix.ARPHRD_NONE)},
		{"steering program", unix.IoctlSetPointerInt(fd, unix.TUNSETSTEERINGEBPF, -1)},
		{"filter program", unix.IoctlSetPointerInt(fd, unix.TUNSETFILTEREBPF, -1)},
		{"send buffer", unix.IoctlSetPointerInt(fd, unix.TUNSETSNDBUF, math.MaxInt32)},
		{"offloads", unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0)},
	} {
		if r.err != nil {
			return fmt.Errorf("reset %s: %w", r.what, r.err)
		}
	}
	// Kernels without cross-endian virtio support refuse the big-endian switch; it
	// is then off.
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETBE, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("reset virtio header big endian: %w", err)
	}
	return nil
}
