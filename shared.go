//go:build linux || windows

package wintun

import (
	"fmt"
	"strings"
)

// Helpers that both implementations use and the stubs of other systems do not.

func logInfo(msg string, args ...any) {
	if l := logger.Load(); l != nil {
		l.Info(msg, args...)
	}
}

// checkTunnelType validates a tunnel type: 1 to 64 printable characters; it is stored
// in the interface's alias next to the GUID.
func checkTunnelType(t string) error {
	if t == "" || len(t) > 64 {
		return fmt.Errorf("wintun: tunnel type %q must be 1 to 64 bytes long", t)
	}
	if strings.ContainsFunc(t, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("wintun: tunnel type %q has control characters", t)
	}
	return nil
}

// checkSize applies AllocateSendPacket's check of a packet's size.
func checkSize(size int) error {
	if size < 1 || size > PacketSizeMax {
		return fmt.Errorf("wintun: invalid packet size %d: want 1 to %d", size, PacketSizeMax)
	}
	return nil
}

// checkSizes applies AllocateSendPackets' checks before anything is allocated.
func checkSizes(sizes []int, packets [][]byte) error {
	if len(packets) < len(sizes) {
		return fmt.Errorf("wintun: AllocateSendPackets: %d sizes but room for %d packets", len(sizes), len(packets))
	}
	for _, size := range sizes {
		if err := checkSize(size); err != nil {
			return err
		}
	}
	return nil
}
