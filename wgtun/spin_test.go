package wgtun

import (
	"testing"
	"time"
)

func TestReadRate(t *testing.T) {
	ms := int64(time.Millisecond)
	for _, c := range []struct {
		name  string
		reads []struct {
			at    int64
			bytes int
		}
		at   int64
		want bool
	}{
		{"no traffic", nil, 600 * ms, false},
		{"heavy, window closed", []struct {
			at    int64
			bytes int
		}{{0, 40_000_000}, {250 * ms, 40_000_000}, {500 * ms, 1}}, 600 * ms, true},
		{"heavy, window still open", []struct {
			at    int64
			bytes int
		}{{0, 40_000_000}, {250 * ms, 40_000_000}}, 300 * ms, false},
		{"light", []struct {
			at    int64
			bytes int
		}{{0, 1_000_000}, {250 * ms, 1_000_000}, {500 * ms, 1}}, 600 * ms, false},
		{"heavy, long ago", []struct {
			at    int64
			bytes int
		}{{0, 40_000_000}, {250 * ms, 40_000_000}, {500 * ms, 1}}, 1600 * ms, false},
		{"heavy after a long idle window", []struct {
			at    int64
			bytes int
		}{{0, 40_000_000}, {5000 * ms, 1}}, 5100 * ms, false},
	} {
		var r readRate
		for _, rd := range c.reads {
			r.add(rd.at, rd.bytes)
		}
		if got := r.high(c.at); got != c.want {
			t.Errorf("%s: high = %v (rate %d B/s), want %v", c.name, got, r.perSecond.Load(), c.want)
		}
	}
}

func TestWritePause(t *testing.T) {
	us := time.Microsecond
	for _, c := range []struct {
		waited, limit time.Duration
		pause         time.Duration
		ok            bool
	}{
		{0, 0, 0, false},                                   // a write wait of zero drops at once
		{0, 100 * time.Millisecond, 0, true},               // the first pause yields, it does not sleep
		{writeSpinFor - us, time.Second, 0, true},          // still yielding
		{writeSpinFor, time.Second, writeSleep, true},      // then short sleeps
		{time.Second - 10*us, time.Second, 10 * us, true},  // never past the end of the wait
		{time.Second, time.Second, 0, false},               // the wait is over
		{50 * us, 20 * us, 0, false},                       // a wait shorter than the spin ends on time
		{writeSpinFor + us, writeSpinFor + 2*us, us, true}, // a sleep no longer than what is left
	} {
		pause, ok := writePause(c.waited, c.limit)
		if pause != c.pause || ok != c.ok {
			t.Errorf("writePause(%v, %v) = %v, %v; want %v, %v", c.waited, c.limit, pause, ok, c.pause, c.ok)
		}
	}
}

// TestWritePauseTakesRoomAtOnce runs Write's waiting loop on a simulated clock on which
// a yield lasts a microsecond and a timer sleep a millisecond, however short it was
// asked to be (as Go timers do on Linux): room that appears while Write waits is taken
// on the next try, a microsecond later, and a full ring that stays full is given up
// on after at most one sleep past the write wait.
func TestWritePauseTakesRoomAtOnce(t *testing.T) {
	const yieldTakes, sleepTakes = time.Microsecond, time.Millisecond
	// wait returns when a Write that found the ring full at time 0 takes room that
	// appears at roomAt, or gives up (ok false).
	wait := func(roomAt, limit time.Duration) (at time.Duration, ok bool) {
		for now := time.Duration(0); ; {
			if now >= roomAt {
				return now, true
			}
			pause, ok := writePause(now, limit)
			switch {
			case !ok:
				return now, false
			case pause == 0:
				now += yieldTakes
			default:
				now += max(pause, sleepTakes)
			}
		}
	}
	for _, roomAt := range []time.Duration{time.Microsecond, 20 * time.Microsecond, writeSpinFor - time.Microsecond} {
		at, ok := wait(roomAt, DefaultWriteWait)
		if !ok || at > roomAt+yieldTakes {
			t.Errorf("room at %v: taken at %v (%v), want by %v", roomAt, at, ok, roomAt+yieldTakes)
		}
	}
	if at, ok := wait(time.Hour, 5*time.Millisecond); ok || at > 5*time.Millisecond+sleepTakes {
		t.Errorf("a ring that stays full: gave up at %v (%v), want by %v", at, ok, 5*time.Millisecond+sleepTakes)
	}
}
