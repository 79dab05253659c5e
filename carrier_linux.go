package wintun

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The carrier of an adapter is on while the adapter has a session, in any process:
// StartSession switches it on, and the last session to end switches it off.

// carrierUsers counts this process's sessions per adapter, and its lock orders the
// sessions that end together (see releaseCarrier).
var carrierUsers = struct {
	sync.Mutex
	n map[GUID]int
}{n: map[GUID]int{}}

// holdCarrier counts a new session of the adapter guid, whose carrier it has switched on.
func holdCarrier(guid GUID) {
	carrierUsers.Lock()
	carrierUsers.n[guid]++
	carrierUsers.Unlock()
}

// waitOperUp waits, for at most a second, until the kernel has acted on the carrier
// change of an adapter that is up. The kernel does so asynchronously (linkwatch, then
// IPv6 address configuration): until the operational state is up it drops the packets
// it sends through the adapter, and until IPv6 addresses added while the carrier was
// off leave the tentative state it drops packets sent to them, so the first packets
// of a new session could be lost.
func waitOperUp(name string) {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		link, err := netlink.LinkByName(name)
		if err != nil || link.Attrs().Flags&net.FlagUp == 0 {
			return
		}
		if link.Attrs().OperState != netlink.OperUp {
			continue
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
		if err != nil || !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.Flags&unix.IFA_F_TENTATIVE != 0 }) {
			return
		}
	}
}

// releaseCarrier switches the carrier off when this session's queue is the last one
// attached to the device, whichever process the others belong to, and detaches the
// queue (at once: closing the file may wait for the reader), so that the next session
// to end counts right. Where the device's queues cannot be counted (an owner without
// CAP_NET_ADMIN may not look into the device's namespace) only this process's
// sessions count.
func (s *Session) releaseCarrier() {
	carrierUsers.Lock()
	defer carrierUsers.Unlock()
	carrierUsers.n[s.adapter.guid]--
	mine := carrierUsers.n[s.adapter.guid]
	if mine <= 0 {
		delete(carrierUsers.n, s.adapter.guid)
	}
	s.conn.Control(func(fd uintptr) {
		others, err := otherQueues(int(fd), s.adapter.name)
		if err != nil {
			others = mine
		}
		if others == 0 {
			unix.IoctlSetPointerInt(int(fd), unix.TUNSETCARRIER, 0)
			// A session of another process may have started in between and
			// switched the carrier on before this switched it off: look again.
			if others, err := otherQueues(int(fd), s.adapter.name); err == nil && others > 0 {
				unix.IoctlSetPointerInt(int(fd), unix.TUNSETCARRIER, 1)
			}
		}
		if ifr, err := unix.NewIfreq(s.adapter.name); err == nil {
			ifr.SetUint16(unix.IFF_DETACH_QUEUE)
			unix.IoctlIfreq(int(fd), unix.TUNSETQUEUE, ifr)
		}
	})
}

// otherQueues counts the queues attached to the device of the attached queue fd,
// besides fd's own, wherever the device is.
func otherQueues(fd int, name string) (int, error) {
	l, err := deviceLink(fd, name)
	if err != nil {
		return 0, err
	}
	t, ok := l.(*netlink.Tuntap)
	if !ok || t.Queues < 1 {
		return 0, fmt.Errorf("wintun: %q: no attached queue", name)
	}
	return t.Queues - 1, nil
}
