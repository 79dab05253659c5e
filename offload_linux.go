package wintun

import (
	"errors"
	"fmt"
	"os"

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

// gsoMaxSize limits the adapter's super-packets so that one, with its header in a
// WithGSO session, fits a ring record (PacketSizeMax); the kernel's default is 65536.
const gsoMaxSize = 65000

// offloadsDisabled reports whether the environment switches the kernel's offloads off
// (WINTUN_OFFLOAD=0), for kernels whose offloads are broken.
func offloadsDisabled() bool { return os.Getenv("WINTUN_OFFLOAD") == "0" }

// coalesce reports whether a plain session coalesces TCP segments and UDP datagrams
// into super-packets before writing them (like the kernel's GRO), which saves a system
// call per packet: WithCoalescing decides, or else the environment.
func coalesce(cfg *sessionConfig) (tcp, udp bool) {
	if offloadsDisabled() {
		return false, false
	}
	tcp, udp = os.Getenv("WINTUN_COALESCE_TCP") != "0", os.Getenv("WINTUN_COALESCE_UDP") != "0"
	if cfg.coalesceTCP != nil {
		tcp = *cfg.coalesceTCP
	}
	if cfg.coalesceUDP != nil {
		udp = *cfg.coalesceUDP
	}
	return tcp, udp
}

// setOffload sets the device-wide offload mask from the queue fd: the kernel keeps the
// mask of earlier sessions, so a session never assumes it. TCP segmentation and (from
// Linux 6.2) UDP segmentation are on, so that the kernel hands over super-packets of
// up to 64 KiB in one read: sessions started WithGSO pass them on, the others split
// them. WINTUN_OFFLOAD=0 switches them off, for every session of the adapter.
// It reports whether the kernel takes UDP super-packets.
func setOffload(fd int, link netlink.Link, gso bool) (uso bool, err error) {
	if offloadsDisabled() {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0); err != nil {
			return false, fmt.Errorf("wintun: offloads off: %w", err)
		}
		return false, nil
	}
	if gso && link.Attrs().MTU > PacketSizeMax-GSOHeaderLen {
		return false, fmt.Errorf("wintun: WithGSO needs an MTU of at most %d, not %d", PacketSizeMax-GSOHeaderLen, link.Attrs().MTU)
	}
	if link.Attrs().GSOMaxSize > gsoMaxSize || link.Attrs().GSOMaxSize == 0 {
		// CreateAdapter sets the limit; an adapter that lacks it gets it here, which
		// needs CAP_NET_ADMIN. Without the limit, super-packets could outgrow a record:
		// then the session goes without offloads.
		if err := netlink.LinkSetGSOMaxSize(link, gsoMaxSize); err != nil {
			logWarn("wintun: cannot limit the super-packet size; offloads off", "adapter", link.Attrs().Name, "err", err)
			if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0); err != nil {
				return false, fmt.Errorf("wintun: offloads off: %w", err)
			}
			return false, nil
		}
	}
	uso = true
	err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCSUM|tunFTSO4|tunFTSO6|tunFUSO4|tunFUSO6)
	if errors.Is(err, unix.EINVAL) { // no UDP segmentation before Linux 6.2
		logInfo("wintun: UDP segmentation offload not supported by this kernel", "adapter", link.Attrs().Name)
		uso = false
		err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCSUM|tunFTSO4|tunFTSO6)
	}
	if err != nil {
		return false, fmt.Errorf("wintun: offloads on: %w", err)
	}
	return uso, nil
}
