package wintun

import (
	"os"
	"testing"

	"go.wintun.dev/wintun/internal/netns"
)

// TestEngineInUse checks which engine halves a session runs: by default poll reads
// and io_uring writes (io_uring is allowed on the project's machines, so this is not
// the fallback), io_uring for both with WINTUN_ENGINE=uring, poll for both with
// WINTUN_ENGINE=poll; and that WithIOUring overrides the environment both ways (CI
// runs the suite with each setting, so each direction is an override in some run).
func TestEngineInUse(t *testing.T) {
	ns := netns.ForTest(t)
	ns.Do(func() error {
		a, err := CreateAdapter("wtengine", "Test", nil)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer a.Close()
		env := map[string]string{"uring": "uring/uring", "poll": "poll/poll"}[os.Getenv("WINTUN_ENGINE")]
		if env == "" {
			env = "poll/uring"
		}
		for _, c := range []struct {
			opts []SessionOption
			want string
		}{
			{nil, env},
			{[]SessionOption{WithIOUring(true)}, "uring/uring"},
			{[]SessionOption{WithIOUring(false)}, "poll/poll"},
		} {
			s, err := a.StartSession(RingCapacityMin, c.opts...)
			if err != nil {
				t.Error(err)
				return nil
			}
			if got := SessionEngine(s); got != c.want {
				t.Errorf("%d options, WINTUN_ENGINE=%q: engine %s, want %s", len(c.opts), os.Getenv("WINTUN_ENGINE"), got, c.want)
			}
			s.End()
		}
		return nil
	})
}
