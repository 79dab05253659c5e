//go:build !linux && !windows

package wintun

import (
	"errors"
	"net/netip"
	"testing"
)

// TestUnsupportedPlatform checks that every call that can fail reports
// errors.ErrUnsupported, and that waiting on a session does not block forever.
func TestUnsupportedPlatform(t *testing.T) {
	p := netip.MustParsePrefix("10.0.0.1/24")
	a, err := CreateAdapter("wt0", "test", nil)
	if a != nil {
		t.Errorf("CreateAdapter returned an adapter")
	}
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: got %v, want an error satisfying errors.Is(err, errors.ErrUnsupported)", op, err)
		}
	}
	check("CreateAdapter", err)
	_, err = OpenAdapter("wt0")
	check("OpenAdapter", err)
	check("Uninstall", Uninstall())
	_, _, err = UninstallReport()
	check("UninstallReport", err)
	_, err = RunningVersion()
	check("RunningVersion", err)

	var zero Adapter
	_, err = zero.MTU()
	check("MTU", err)
	check("SetMTU", zero.SetMTU(1500))
	check("AddAddress", zero.AddAddress(p))
	check("RemoveAddress", zero.RemoveAddress(p))
	_, err = zero.Addresses()
	check("Addresses", err)
	check("AddRoute", zero.AddRoute(p))
	check("RemoveRoute", zero.RemoveRoute(p))
	_, err = zero.StartSession(RingCapacityMin)
	check("StartSession", err)
	check("Close", zero.Close())

	var s Session
	_, err = s.ReceivePacket()
	check("ReceivePacket", err)
	_, err = s.ReceivePackets(make([][]byte, 4))
	check("ReceivePackets", err)
	_, err = s.AllocateSendPacket(20)
	check("AllocateSendPacket", err)
	_, err = s.AllocateSendPackets([]int{20}, make([][]byte, 1))
	check("AllocateSendPackets", err)
	select {
	case <-s.ReadWaitEvent():
	default:
		t.Errorf("ReadWaitEvent's channel is open: a caller waiting on it would never wake up")
	}
	s.End()
}
