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
