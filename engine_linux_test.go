package wintun

import (
	"os"
	"testing"

	"go.wintun.dev/wintun/internal/netns"
)

// TestEngineInUse checks that WINTUN_ENGINE=uring really runs the io_uring engine
// here (io_uring is allowed on the project's machines), so that the suite run with it
// tests that engine and not the fallback.
func TestEngineInUse(t *testing.T) {
	ns := netns.ForTest(t)
	ns.Do(func() error {
		a, err := CreateAdapter("wtengine", "Test", nil)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer a.Close()
		s, err := a.StartSession(RingCapacityMin)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer s.End()
		want := os.Getenv("WINTUN_ENGINE") == "uring"
		if got := s.ur != nil && s.uw != nil; got != want {
			t.Errorf("io_uring engine in use: %v, want %v (WINTUN_ENGINE=%q)", got, want, os.Getenv("WINTUN_ENGINE"))
		}
		return nil
	})
}

// TestWithIOUring checks that the option overrides the environment both ways (the
// suite runs once per engine, so each direction is an override in one of the runs).
func TestWithIOUring(t *testing.T) {
	ns := netns.ForTest(t)
	ns.Do(func() error {
		a, err := CreateAdapter("wtengine", "Test", nil)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer a.Close()
		for _, on := range []bool{true, false} {
			s, err := a.StartSession(RingCapacityMin, WithIOUring(on))
			if err != nil {
				t.Error(err)
				return nil
			}
			if got := s.ur != nil; got != on {
				t.Errorf("WithIOUring(%v): io_uring engine in use: %v", on, got)
			}
			s.End()
		}
		return nil
	})
}
