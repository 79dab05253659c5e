package wgtun

import "golang.zx2c4.com/wireguard/tun"

// linkState turns readings of the adapter's state, however obtained, into the tun
// events wireguard-go expects: the Windows link monitor reads the state again on every
// interface-change notification, which says something changed but not what.
type linkState struct {
	up     bool // as last reported
	seenUp bool // a reading has shown the link up
	mtu    int
}

// start reports the link up, as wireguard-go's own Windows device does: the session
// that makes a Wintun adapter up is running when the monitor starts.
func (s *linkState) start() []tun.Event {
	s.up = true
	return []tun.Event{tun.EventUp}
}

// update records a reading (mtu 0: unknown, left as it was; gone: the adapter no
// longer exists) and returns the events it implies, the MTU change first so that
// wireguard-go sees the new MTU when it brings the device up. A reading of "down"
// counts only once a reading has shown the link up, or when the adapter is gone:
// right after the session starts Windows may not have seen the driver connect yet,
// and a Down then would stop a device that is about to work.
func (s *linkState) update(up, gone bool, mtu int) []tun.Event {
	var events []tun.Event
	if mtu > 0 && mtu != s.mtu {
		s.mtu = mtu
		events = append(events, tun.EventMTUUpdate)
	}
	if up {
		s.seenUp = true
	} else if !gone && !s.seenUp {
		up = s.up
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
