package wgtun

import "golang.zx2c4.com/wireguard/tun"

// linkState turns observations of the adapter's state, however obtained, into the
// tun events wireguard-go expects: the Windows link monitor reads the state again on
// every interface-change notification, which says something changed but not what.
type linkState struct {
	up  bool
	mtu int
}

// update records an observation (mtu 0: unknown, left as it was) and returns the
// events it implies, the MTU change first so that wireguard-go sees the new MTU when
// it brings the device up.
func (s *linkState) update(up bool, mtu int) []tun.Event {
	var events []tun.Event
	if mtu > 0 && mtu != s.mtu {
		s.mtu = mtu
		events = append(events, tun.EventMTUUpdate)
	}
	switch {
	case up && !s.up:
		events = append(events, tun.EventUp)
	case !up && s.up:
		events = append(events, tun.EventDown)
	}
	s.up = up
	return events
}
