package wgtun

import (
	"runtime"
	"sync/atomic"
	"time"
)

// On Windows, waking a thread blocked on the session's read event costs more than
// the time between two packets of a busy tunnel, so wireguard-go's own Windows tun
// polls the ring for a short while before it waits, as long as traffic is heavy. The
// Device does the same there. On Linux the session's reader wakes a waiting Read
// cheaply, and spinning only burns a core.
const spinBeforeWait = runtime.GOOS == "windows"

const (
	// rateWindow is the span over which readRate measures traffic.
	rateWindow = 500 * time.Millisecond
	// spinRate is the traffic (bytes per second) above which Read spins: about
	// 800 Mbit/s.
	spinRate = 100_000_000
	// spinFor is how long Read polls before it waits: about the time between two
	// full-size packets at 1 Gbit/s.
	spinFor = 12 * time.Microsecond
)

// readRate measures the bytes Read hands out per second, over windows of rateWindow.
// Its methods are safe for concurrent use.
type readRate struct {
	windowStart atomic.Int64  // monotonic nanoseconds at which the current window began
	bytes       atomic.Uint64 // bytes counted in the current window
	perSecond   atomic.Uint64 // the rate measured over the last complete window
}

// add counts n bytes read at now (monotonic nanoseconds), closing the current window
// first if it is over.
func (r *readRate) add(now int64, n int) {
	start := r.windowStart.Load()
	if elapsed := now - start; elapsed >= int64(rateWindow) && r.windowStart.CompareAndSwap(start, now) {
		// A window left open for long (no traffic) spreads its bytes over all of it.
		bytes := r.bytes.Swap(0)
		r.perSecond.Store(uint64(float64(bytes) * float64(time.Second) / float64(elapsed)))
	}
	r.bytes.Add(uint64(n))
}

// high reports whether traffic was heavy in the last window and that window ended
// recently enough to still tell.
func (r *readRate) high(now int64) bool {
	return r.perSecond.Load() >= spinRate && now-r.windowStart.Load() < 2*int64(rateWindow)
}

// clockBase anchors nanotime, the monotonic clock readRate uses, in nanoseconds.
var clockBase = time.Now()

func nanotime() int64 { return int64(time.Since(clockBase)) }

const (
	// writeSpinFor is how long a Write that finds the send ring full yields the
	// processor between tries before it sleeps between them: the kernel side makes
	// room after each bundle it writes, a few microseconds apart, while a Go timer
	// sleep on Linux lasts much longer than asked when it is short.
	writeSpinFor = 100 * time.Microsecond
	// writeSleep is the sleep between tries after that.
	writeSleep = 50 * time.Microsecond
)

// writePause says what a Write that has waited for room in the send ring for waited,
// out of a write wait of limit, does before its next try: ok is false once the wait
// is over (the packet is dropped); otherwise a pause of zero means yielding the
// processor (runtime.Gosched), and any other pause a sleep that ends by the limit.
func writePause(waited, limit time.Duration) (pause time.Duration, ok bool) {
	switch {
	case waited >= limit:
		return 0, false
	case waited < writeSpinFor:
		return 0, true
	}
	return min(writeSleep, limit-waited), true
}
