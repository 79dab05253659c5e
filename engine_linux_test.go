package wintun

import (
	"os"
	"testing"

	"go.wintun.dev/wintun/internal/netns"
)

// TestEngineInUse checks that WINTUN_ENGINE=uring really runs the io_uring engine
// here (io_uring is allowed on the project's machines), so that the suite run with it
// tests that engine and not the fallback; and that WithIOUring overrides the
// environment both ways (the suite runs once per engine, so each direction is an
// override in one of the runs).
func TestEngineInUse(t *testing.T) {
	ns := netns.ForTest(t)
	ns.Do(func() error {
		a, err := CreateAdapter("wtengine", "Test", nil)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer a.Close()
		env := os.Getenv("WINTUN_ENGINE") == "uring"
		for _, c := range []struct {
			opts []SessionOption
			want bool
		}{
			{nil, env},
			{[]SessionOption{WithIOUring(true)}, true},
			{[]SessionOption{WithIOUring(false)}, false},
		} {
			s, err := a.StartSession(RingCapacityMin, c.opts...)
			if err != nil {
				t.Error(err)
				return nil
			}
			if got := SessionUsesIOUring(s); got != c.want {
				t.Errorf("%d options, WINTUN_ENGINE=%q: io_uring engine in use: %v, want %v", len(c.opts), os.Getenv("WINTUN_ENGINE"), got, c.want)
			}
			s.End()
		}
		return nil
	})
}
