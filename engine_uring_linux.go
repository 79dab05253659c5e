package wintun

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"go.wintun.dev/wintun/internal/offload"
	"go.wintun.dev/wintun/internal/uring"
	"golang.org/x/sys/unix"
)

// The io_uring engine moves packets between a session's rings and its tun queue with
// io_uring instead of a read or write system call per packet: one multishot read
// fills provided buffers with whatever the kernel sends (one completion per packet,
// no system call), and the writer submits a bundle of writes per system call.
// WINTUN_ENGINE=uring asks for it and WINTUN_ENGINE=poll refuses it; where io_uring is
// not allowed (seccomp, the io_uring_disabled sysctl, kernels before 6.7) the session
// falls back to the poll engine and logs why.

const (
	uringBufSize  = (GSOHeaderLen + PacketSizeMax + 15) &^ 15
	uringBufCount = 32
	// uringIdleCheck is how long the reader waits for completions before it checks
	// that the device still exists.
	uringIdleCheck = 200 * time.Millisecond
)

// engineUring reports whether a session should try io_uring: WithIOUring, or else the
// environment.
func engineUring(cfg *sessionConfig) bool {
	if cfg.uring != nil {
		return *cfg.uring
	}
	return os.Getenv("WINTUN_ENGINE") == "uring"
}

// uringReader is the receive side: a ring with one multishot read and its buffers,
// and a poll on an eventfd that End writes to, to stop the reader.
type uringReader struct {
	ring  *uring.Ring
	bufs  *uring.BufRing
	efd   int
	tunfd int32
}

// User data of the reader's requests.
const (
	uringRead = iota
	uringStop
)

func newUringReader(tunfd int) (*uringReader, error) {
	r, err := uring.New(8, 256)
	if err != nil {
		return nil, err
	}
	u := &uringReader{ring: r, tunfd: int32(tunfd), efd: -1}
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

// stop wakes the reader for good; the session has started ending.
func (u *uringReader) stop() {
	unix.Write(u.efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
}

// arm submits the multishot read; it ends when the buffers run out or on an error.
func (u *uringReader) arm() error {
	sqe := u.ring.SQE()
	if sqe == nil {
		return fmt.Errorf("uring: submission queue full")
	}
	sqe.Opcode, sqe.Fd, sqe.Off, sqe.UserData = uring.OpReadMultishot, u.tunfd, ^uint64(0), uringRead
	sqe.Flags, sqe.BufIndex = 1<<5, u.bufs.Group() // IOSQE_BUFFER_SELECT
	_, err := u.ring.Submit(0)
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

// receiveUring is receiveLoop's body for the io_uring engine; it returns why the
// session ends.
func (s *Session) receiveUring(rc *receiver) error {
	u := s.ur
	// The kernel completes a multishot read with task work in the thread that
	// submitted it. This goroutine sleeps in io_uring_enter, so a packet usually wakes
	// that one thread, which runs the task work and goes on at once. After it lends its
	// thread to the application (below) it may continue on another thread, and then a
	// packet wakes two; moving the read along each time (cancel and submit again from
	// the new thread) was measured and did not pay. A read whose thread exits is
	// canceled by the kernel: that ends it, and it is armed again.
	if err := u.arm(); err != nil {
		logWarn("wintun: io_uring read", "adapter", s.adapter.name, "err", err)
		return ErrAdapterGone
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
			if s.tunGone() {
				return ErrAdapterGone
			}
			continue
		default:
			logWarn("wintun: io_uring wait", "adapter", s.adapter.name, "err", err)
			return ErrAdapterGone
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
					rc.st.rxErrors.Add(1)
					logWarn("wintun: io_uring read", "adapter", s.adapter.name, "errno", -c.Res)
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
			return ErrSessionEnded
		case goneErr:
			return ErrAdapterGone
		case rearm:
			if err := u.arm(); err != nil {
				logWarn("wintun: io_uring re-arm", "adapter", s.adapter.name, "err", err)
				return ErrAdapterGone
			}
		}
	}
}

// tunGone reports whether the session's queue reports a poll error: the tun driver's
// sign that its device is gone.
func (s *Session) tunGone() bool {
	gone := false
	s.conn.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, 0); err == nil && n > 0 {
			gone = pfd[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0
		}
	})
	return gone
}

// deliver puts a packet read with its virtio_net_hdr into the receive ring, split if
// it is a super-packet and the session is plain.
func (rc *receiver) deliver(b []byte) {
	if len(b) <= GSOHeaderLen {
		rc.st.rxErrors.Add(1)
		return
	}
	if rc.s.gso {
		rc.place(b, offload.Header{}, false)
	} else {
		rc.place(b[GSOHeaderLen:], offload.ParseHeader(b), false)
	}
}

// uringWriter queues the writer's single-packet writes and submits them together.
type uringWriter struct {
	ring   *uring.Ring
	tunfd  int32
	iovs   [writeBundle][2]unix.Iovec
	queued [][]byte
}

func newUringWriter(tunfd int) (*uringWriter, error) {
	r, err := uring.New(writeBundle, 2*writeBundle)
	if err != nil {
		return nil, err
	}
	return &uringWriter{ring: r, tunfd: int32(tunfd)}, nil
}

// queue adds a write of p (after the zero header for a plain session); it flushes
// first when the queue is full.
func (w *writer) queue(p []byte) error {
	u := w.uw
	if len(u.queued) == writeBundle {
		if err := w.flush(); err != nil {
			return err
		}
	}
	i := len(u.queued)
	iov := &u.iovs[i]
	n := 0
	if !w.s.gso {
		iov[0].Base, n = &zeroHeader[0], 1
		iov[0].SetLen(GSOHeaderLen)
	}
	iov[n].Base = &p[0]
	iov[n].SetLen(len(p))
	sqe := u.ring.SQE()
	sqe.Opcode, sqe.Fd, sqe.Off = uring.OpWritev, u.tunfd, ^uint64(0)
	sqe.Addr, sqe.Len, sqe.UserData = uint64(uintptr(unsafe.Pointer(&iov[0]))), uint32(n+1), uint64(i)
	u.queued = append(u.queued, p)
	return nil
}

// flush submits the queued writes, waits for them (tun writes complete at once) and
// counts their results. It returns an error satisfying gone when the device is gone.
func (w *writer) flush() error {
	u := w.uw
	if u == nil || len(u.queued) == 0 {
		return nil
	}
	n := len(u.queued)
	var err error
	for done := 0; done < n; {
		if _, err = u.ring.Submit(uint32(n - done)); err != nil {
			break
		}
		done += u.ring.Completions(func(c *uring.CQE) {
			p := u.queued[c.UserData]
			switch {
			case c.Res == -int32(unix.EBADFD):
				err = unix.EBADFD
			case c.Res < 0:
				w.st.txErrorsKern.Add(1)
			default:
				w.sent(p)
			}
		})
	}
	u.queued = u.queued[:0]
	return err
}

// sent counts a packet the kernel took.
func (w *writer) sent(p []byte) {
	w.st.txPackets.Add(1)
	w.st.txBytes.Add(uint64(len(p)))
	if w.s.capture != nil {
		w.s.capture.CapturePacket(Sent, time.Now(), p)
	}
}
