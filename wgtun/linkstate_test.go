package wgtun

import (
	"slices"
	"testing"

	"golang.zx2c4.com/wireguard/tun"
)

type reading struct {
	up, gone bool
	mtu      int
	want     []tun.Event
}

func runReadings(t *testing.T, s *linkState, steps []reading) {
	t.Helper()
	for i, step := range steps {
		if got := s.update(step.up, step.gone, step.mtu); !slices.Equal(got, step.want) {
			t.Errorf("step %d (up %v, gone %v, MTU %d): events %v, want %v", i, step.up, step.gone, step.mtu, got, step.want)
		}
	}
}

func TestLinkState(t *testing.T) {
	s := linkState{mtu: 1420}
	if got := s.start(); !slices.Equal(got, []tun.Event{tun.EventUp}) {
		t.Fatalf("start: %v", got)
	}
	runReadings(t, &s, []reading{
		{false, false, 1420, nil}, // not connected yet as Windows sees it: no Down
		{true, false, 1420, nil},  // now it is; reported already
		{true, false, 0, nil},     // MTU unreadable: unchanged
		{true, false, 1380, []tun.Event{tun.EventMTUUpdate}},
		{false, false, 1380, []tun.Event{tun.EventDown}}, // seen up before: a real Down
		{false, false, 1280, []tun.Event{tun.EventMTUUpdate}},
		{false, false, 1280, nil},
		{true, false, 1400, []tun.Event{tun.EventMTUUpdate, tun.EventUp}},
	})
	if !s.up || s.mtu != 1400 {
		t.Errorf("final state %+v", s)
	}

	// An adapter removed before any reading showed it up is down all the same.
	s = linkState{mtu: 1420}
	s.start()
	runReadings(t, &s, []reading{
		{false, true, 0, []tun.Event{tun.EventDown}},
		{false, true, 0, nil},
	})
}
