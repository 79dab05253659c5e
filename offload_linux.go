package wintun

import (
	"errors"
	"fmt"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Offload flags of TUNSETOFFLOAD (linux/if_tun.h).
const (
	tunFCSUM = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
	tunFUSO4 = 0x20
	tunFUSO6 = 0x40
)

// gsoMaxSize limits the adapter's super-packets so that one with its header fits a
// ring record (PacketSizeMax); the kernel's default is 65536.
const gsoMaxSize = 65000

// offloadModes tracks, per adapter, the GSO mode of this process's sessions: the
// offload mask is device-wide, so a plain session next to a WithGSO one would receive
// super-packets it cannot read.
var offloadModes = struct {
	sync.Mutex
	m map[GUID]offloadUse
}{m: map[GUID]offloadUse{}}

type offloadUse struct {
	gso      bool
	sessions int
}

// checkOffloadMode registers a session's mode, refusing one that differs from the
// running sessions' mode.
func checkOffloadMode(a *Adapter, gso bool) error {
	offloadModes.Lock()
	defer offloadModes.Unlock()
	u := offloadModes.m[a.guid]
	if u.sessions > 0 && u.gso != gso {
		return fmt.Errorf("wintun: adapter %q has sessions with WithGSO=%v; all its sessions must agree", a.name, u.gso)
	}
	offloadModes.m[a.guid] = offloadUse{gso: gso, sessions: u.sessions + 1}
	return nil
}

// releaseOffloadMode unregisters a session registered by checkOffloadMode.
func releaseOffloadMode(g GUID) {
	offloadModes.Lock()
	defer offloadModes.Unlock()
	if u := offloadModes.m[g]; u.sessions > 1 {
		offloadModes.m[g] = offloadUse{gso: u.gso, sessions: u.sessions - 1}
	} else {
		delete(offloadModes.m, g)
	}
}

// setOffload sets the device-wide offload mask from the queue fd: the kernel keeps the
// mask of earlier sessions, so a session never assumes it. With gso, TCP segmentation
// and (from Linux 6.2) UDP segmentation are on; without, everything is off so that the
// queue receives ordinary packets with complete checksums.
func setOffload(fd int, link netlink.Link, gso bool) error {
	if !gso {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0); err != nil {
			return fmt.Errorf("wintun: offloads off: %w", err)
		}
		return nil
	}
	if link.Attrs().MTU > PacketSizeMax-GSOHeaderLen {
		return fmt.Errorf("wintun: WithGSO needs an MTU of at most %d, not %d", PacketSizeMax-GSOHeaderLen, link.Attrs().MTU)
	}
	if link.Attrs().GSOMaxSize > gsoMaxSize || link.Attrs().GSOMaxSize == 0 {
		if err := netlink.LinkSetGSOMaxSize(link, gsoMaxSize); err != nil {
			return fmt.Errorf("wintun: limit the super-packet size: %w", err)
		}
	}
	err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCSUM|tunFTSO4|tunFTSO6|tunFUSO4|tunFUSO6)
	if errors.Is(err, unix.EINVAL) { // no UDP segmentation before Linux 6.2
		logInfo("wintun: UDP segmentation offload not supported by this kernel", "adapter", link.Attrs().Name)
		err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCSUM|tunFTSO4|tunFTSO6)
	}
	if err != nil {
		return fmt.Errorf("wintun: offloads on: %w", err)
	}
	return nil
}
