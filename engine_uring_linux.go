package wintun

import (
	"errors"
	"fmt"
	"os"
	"syscall"
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

// engineUring reports whether sessions should try io_uring.
func engineUring() bool { return os.Getenv("WINTUN_ENGINE") == "uring" }

// uringReader is the receive side: a ring with one multishot read, its buffers, and an
// eventfd that Go's poller watches for completions.
type uringReader struct {
	ring  *uring.Ring
	bufs  *uring.BufRing
	efd   *os.File
	econn syscall.RawConn
	tunfd int32
}

func newUringReader(tunfd int) (*uringReader, error) {
	r, err := uring.New(8, 256)
	if err != nil {
		return nil, err
	}
	u := &uringReader{ring: r, tunfd: int32(tunfd)}
	if u.bufs, err = r.RegisterBufRing(0, uringBufCount, uringBufSize); err != nil {
		r.Close()
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		if err = r.RegisterEventfd(efd); err != nil {
			unix.Close(efd)
		}
	}
	if err != nil {
		u.close()
		return nil, err
	}
	u.efd = os.NewFile(uintptr(efd), "eventfd")
	if u.econn, err = u.efd.SyscallConn(); err != nil {
		u.close()
		return nil, err
	}
	return u, nil
}

// arm submits the multishot read; it ends when the buffers run out or on an error.
func (u *uringReader) arm() error {
	sqe := u.ring.SQE()
	if sqe == nil {
		return fmt.Errorf("uring: submission queue full")
	}
	sqe.Opcode, sqe.Fd, sqe.Off = uring.OpReadMultishot, u.tunfd, ^uint64(0)
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
	if u.efd != nil {
		u.efd.Close()
	}
}

// receiveUring is receiveLoop's body for the io_uring engine; it returns why the
// session ends.
func (s *Session) receiveUring(rc *receiver) error {
	u := s.ur
	defer u.close()
	// The kernel cancels a task's multishot requests when that thread exits, and a Go
	// thread exits when a goroutine locked to it ends: a read canceled that way
	// (ECANCELED) is simply armed again. (Locking this goroutine to its thread
	// instead costs a thread hand-off per wake-up: the ping's round trip grew by half.)
	if err := u.arm(); err != nil {
		logWarn("wintun: io_uring read", "adapter", s.adapter.name, "err", err)
		return ErrAdapterGone
	}
	var ev [8]byte
	for {
		// The multishot read can miss the device's deletion (a retry may see the
		// queue still attached and then wait for data that never comes), so an idle
		// reader looks for the poll error the tun driver reports once it is gone.
		u.efd.SetReadDeadline(time.Now().Add(uringIdleCheck))
		err := u.econn.Read(func(fd uintptr) bool {
			_, err := unix.Read(int(fd), ev[:])
			return err != unix.EAGAIN
		})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if s.tunGone() {
				return ErrAdapterGone
			}
			continue
		}
		if err != nil { // closed by shutdown
			return ErrSessionEnded
		}
		rearm, goneErr := false, false
		u.ring.Completions(func(c *uring.CQE) {
			switch {
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
		rc.publish()
		if goneErr {
			return ErrAdapterGone
		}
		if rearm {
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
