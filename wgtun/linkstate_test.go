package wgtun

import (
	"slices"
	"testing"

	"golang.zx2c4.com/wireguard/tun"
)

func TestLinkState(t *testing.T) {
	s := linkState{mtu: 1420}
	for i, step := range []struct {
		up   bool
		mtu  int
		want []tun.Event
	}{
		{true, 1420, []tun.Event{tun.EventUp}},
		{true, 1420, nil}, // a notification about something else
		{true, 0, nil},    // MTU unreadable: unchanged
		{true, 1380, []tun.Event{tun.EventMTUUpdate}},
		{false, 1380, []tun.Event{tun.EventDown}},
		{false, 1280, []tun.Event{tun.EventMTUUpdate}},
		{false, 1280, nil},
		{true, 1400, []tun.Event{tun.EventMTUUpdate, tun.EventUp}},
	} {
		if got := s.update(step.up, step.mtu); !slices.Equal(got, step.want) {
			t.Errorf("step %d (up %v, MTU %d): events %v, want %v", i, step.up, step.mtu, got, step.want)
		}
	}
	if !s.up || s.mtu != 1400 {
		t.Errorf("final state %+v", s)
	}
}
