package wintun

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"go.wintun.dev/wintun/internal/uring"
	"golang.org/x/sys/unix"
)

// The io_uring halves of the engines move packets with io_uring instead of a read or
// write system call per packet: the reader's one multishot read fills provided
// buffers with whatever the kernel sends (one completion per packet, no system call),
// and the sender submits the writes of a plan in one system call.

const (
	uringBufSize  = (GSOHeaderLen + PacketSizeMax + 15) &^ 15
	uringBufCount = 32
	// uringIdleCheck is how long the reader waits for completions before it checks
	// that the device still exists.
	uringIdleCheck = 200 * time.Millisecond
)

// uringReader reads with a ring of its own: one multishot read and its buffers, and
// a poll on an eventfd that stop writes to.
type uringReader struct {
	conn syscall.RawConn
	name string // the adapter's, for logs
	ring *uring.Ring
	bufs *uring.BufRing
	efd  int
}

// User data of the reader's requests.
const (
	uringRead = iota
	uringStop
)

func newUringReader(conn syscall.RawConn, name string) (*uringReader, error) {
	r, err := uring.New(8, 256)
	if err != nil {
		return nil, err
	}
	if !r.Supports(uring.OpReadMultishot) { // before Linux 6.7
		r.Close()
		return nil, fmt.Errorf("%w: no multishot read", uring.ErrUnsupported)
	}
	u := &uringReader{conn: conn, name: name, ring: r, efd: -1}
	if u.bufs, err = r.RegisterBufRing(0, uringBufCount, uringBufSize); err != nil {
		u.close()
		return nil, err
	}
	if u.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		u.close()
		return nil, fmt.Errorf("uring: eventfd: %w", err)
	}
	sqe := r.SQE()
	sqe.Opcode, sqe.Fd, sqe.OpFlags, sqe.UserData = uring.OpPollAdd, int32(u.efd), unix.POLLIN, uringStop
	if _, err := r.Submit(0); err != nil {
		u.close()
		return nil, fmt.Errorf("uring: poll: %w", err)
	}
	return u, nil
}

// stop wakes the reader for good.
func (u *uringReader) stop() {
	unix.Write(u.efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
}

// arm submits the multishot read, while it holds the queue's file open; the read
// ends when the buffers run out or on an error.
func (u *uringReader) arm() error {
	var err error
	cerr := u.conn.Control(func(fd uintptr) {
		sqe := u.ring.SQE()
		if sqe == nil {
			err = fmt.Errorf("uring: submission queue full")
			return
		}
		sqe.Opcode, sqe.Fd, sqe.Off, sqe.UserData = uring.OpReadMultishot, int32(fd), ^uint64(0), uringRead
		sqe.Flags, sqe.BufIndex = 1<<5, u.bufs.Group() // IOSQE_BUFFER_SELECT
		_, err = u.ring.Submit(0)
	})
	if cerr != nil {
		return cerr // the session closed the file
	}
	return err
}

// close tears the ring down (the kernel cancels the read and lets go of the tun
// file), then frees the buffers.
func (u *uringReader) close() {
	u.ring.Close()
	if u.bufs != nil {
		u.bufs.Free()
	}
	if u.efd >= 0 {
		unix.Close(u.efd)
	}
}

// uringYielded counts the readers that are yielding their thread to the application.
var uringYielded atomic.Int32

func (u *uringReader) receive(rc *receiver) error {
	// The kernel completes a multishot read with task work in the thread that
	// submitted it. This goroutine sleeps in io_uring_enter, so a packet usually wakes
	// that one thread, which runs the task work and goes on at once. After it lends its
	// thread to the application (below) it may continue on another thread, and then a
	// packet wakes two; moving the read along each time (cancel and submit again from
	// the new thread) was measured and did not pay. A read whose thread exits is
	// canceled by the kernel: that ends it, and it is armed again.
	if err := u.arm(); err != nil {
		logWarn("wintun: io_uring read", "adapter", u.name, "err", err)
		return err
	}
	for {
		// The multishot read can miss the device's deletion (a retry may see the
		// queue still attached and then wait for data that never comes), so an idle
		// reader looks for the poll error the tun driver reports once it is gone.
		if uringYielded.Load() > 0 {
			// Another session's reader is runnable but not running: this thread
			// keeps its P while it waits in the kernel, and Go takes a P back from a
			// waiting thread only after up to 10 ms. Starting a goroutine wakes an
			// idle P, which picks that reader up.
			go func() {}()
		}
		switch err := u.ring.Wait(uringIdleCheck); err {
		case nil, unix.EINTR:
		case unix.ETIME:
			if u.tunGone() {
				return unix.EBADFD
			}
			continue
		default:
			logWarn("wintun: io_uring wait", "adapter", u.name, "err", err)
			return err
		}
		rearm, goneErr, stop := false, false, false
		u.ring.Completions(func(c *uring.CQE) {
			switch {
			case c.UserData == uringStop:
				stop = true
				return
			case c.Res == -int32(unix.EBADFD):
				goneErr = true
			case c.Res < 0:
				if c.Res != -int32(unix.ENOBUFS) && c.Res != -int32(unix.EAGAIN) && c.Res != -int32(unix.EINTR) &&
					c.Res != -int32(unix.ECANCELED) {
					rc.readFailed(unix.Errno(-c.Res))
				}
			case c.Flags&uring.CQEFBuffer != 0:
				id := uint16(c.Flags >> 16)
				if c.Res > 0 {
					rc.deliver(u.bufs.Buffer(id)[:c.Res])
				} else {
					rc.st.rxErrors.Add(1)
				}
				u.bufs.Give(id)
			}
			if c.Flags&uring.CQEFMore == 0 {
				rearm = true
			}
		})
		u.bufs.Publish()
		if rc.publish() {
			// The application's goroutine, woken by the event, waits in this
			// thread's run queue: let it run here and now rather than wait for
			// another thread to wake up and take it, or for this one to come back
			// from the wait below. Twice: one schedule in 61 takes the global run
			// queue, where Gosched put this goroutine, before the local one.
			uringYielded.Add(1)
			runtime.Gosched()
			runtime.Gosched()
			uringYielded.Add(-1)
		}
		switch {
		case stop:
			return nil
		case goneErr:
			return unix.EBADFD
		case rearm:
			if err := u.arm(); err != nil {
				logWarn("wintun: io_uring re-arm", "adapter", u.name, "err", err)
				return err
			}
		}
	}
}

// tunGone reports whether the session's queue reports a poll error: the tun driver's
// sign that its device is gone.
func (u *uringReader) tunGone() bool {
	gone := false
	u.conn.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, 0); err == nil && n > 0 {
			gone = pfd[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0
		}
	})
	return gone
}

// uringSender submits the writes of a plan together and waits for them: tun writes
// complete at once.
type uringSender struct {
	conn syscall.RawConn
	ring *uring.Ring
	iovs []unix.Iovec // every unit's iovecs, alive until the writes complete
}

func newUringSender(conn syscall.RawConn) (*uringSender, error) {
	r, err := uring.New(writeBundle, 2*writeBundle)
	if err != nil {
		return nil, err
	}
	return &uringSender{conn: conn, ring: r}, nil
}

func (w *uringSender) close() { w.ring.Close() }

func (w *uringSender) send(units []sendUnit) (int, error) {
	made := 0
	for made < len(units) {
		var n int
		var err error
		if cerr := w.conn.Control(func(fd uintptr) { n, err = w.submit(int32(fd), units[made:]) }); cerr != nil {
			return made, cerr // the session closed the file
		}
		made += n
		if err != nil {
			return made, err
		}
	}
	return made, nil
}

// errPending marks a unit whose write has not completed.
var errPending = errors.New("wintun: write pending")

// submit writes units, in order, through the tun queue fd, which the caller holds
// open, and returns how many it made. The writes are linked: one that fails cancels
// those after it, so that none of them runs out of order; submit returns at the first
// canceled one, and at one that failed because the device is gone (EBADFD), with that
// error. A write that failed otherwise is made, with its error. (A tun queue never
// answers EAGAIN here: io_uring waits for room itself, as a blocking write would.)
func (w *uringSender) submit(fd int32, units []sendUnit) (int, error) {
	// The kernel reads the iovec arrays when it runs the writes: they must not move
	// before the writes complete, which submit waits for.
	total := 0
	for _, u := range units {
		total += len(u.iov)
	}
	if cap(w.iovs) < total {
		w.iovs = make([]unix.Iovec, 0, total)
	}
	w.iovs = w.iovs[:0]
	var last *uring.SQE
	queued := 0
	for i := range units {
		u := &units[i]
		u.err = nil
		if u.iov == nil {
			continue
		}
		sqe := w.ring.SQE()
		if sqe == nil {
			units = units[:i] // the rest next time
			break
		}
		u.err = errPending
		start := len(w.iovs)
		w.iovs = iovecs(w.iovs, u.iov)
		sqe.Opcode, sqe.Fd, sqe.Off = uring.OpWritev, fd, ^uint64(0)
		sqe.Addr, sqe.Len, sqe.UserData = uint64(uintptr(unsafe.Pointer(&w.iovs[start]))), uint32(len(w.iovs)-start), uint64(i)
		sqe.Flags = uring.SQELink
		last = sqe
		queued++
	}
	if last != nil {
		last.Flags = 0 // the chain ends here
	}
	var serr error
	for done := 0; done < queued; {
		if _, serr = w.ring.Submit(uint32(queued - done)); serr != nil {
			break
		}
		done += w.ring.Completions(func(c *uring.CQE) {
			units[c.UserData].err = nil
			if c.Res < 0 {
				units[c.UserData].err = unix.Errno(-c.Res)
			}
		})
	}
	for i := range units {
		switch err := units[i].err; err {
		case errPending:
			return i, serr
		case unix.ECANCELED:
			units[i].err = nil
			return i, nil
		case unix.EBADFD:
			units[i].err = nil
			return i, err
		}
	}
	return len(units), nil
}
