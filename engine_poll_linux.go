package wintun

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The poll halves of the engines move packets with a readv or writev system call
// each, and wait through Go's poller when the queue has nothing to read or no room to
// write. Closing the queue's file, which the session does as it ends, wakes them.

type pollReader struct {
	conn syscall.RawConn
	iov  [3]unix.Iovec
}

func (e *pollReader) receive(rc *receiver) error {
	for {
		var rerr error
		err := e.conn.Read(func(fd uintptr) bool { return e.readBundle(int(fd), rc, &rerr) })
		rc.publish()
		if err != nil {
			// Either the session closed the file, or the poller saw EPOLLERR, which
			// the tun driver reports once the device is gone.
			return err
		}
		if rerr != nil {
			if gone(rerr) {
				return rerr
			}
			rc.readFailed(rerr)
		}
	}
}

// readBundle reads up to receiveBundle packets; it reports false when it should wait
// for the queue to become readable.
func (e *pollReader) readBundle(fd int, rc *receiver, rerr *error) bool {
	for reads := 0; reads < receiveBundle; reads++ {
		n, err := readv(fd, iovecs(e.iov[:0], rc.readBuffers()))
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return rc.unpublished() > 0
		case err != nil:
			*rerr = err
			return true
		}
		rc.readDone(n)
	}
	return true
}

func (e *pollReader) stop()  {}
func (e *pollReader) close() {}

type pollSender struct {
	conn syscall.RawConn
	iov  []unix.Iovec
}

func (e *pollSender) send(units []sendUnit) (int, error) {
	done := 0
	err := e.conn.Write(func(fd uintptr) bool {
		for done < len(units) {
			u := &units[done]
			if u.iov != nil {
				e.iov = iovecs(e.iov[:0], u.iov)
				_, u.err = writev(int(fd), e.iov)
				switch {
				case u.err == unix.EINTR:
					continue
				case u.err == unix.EAGAIN:
					return false
				case gone(u.err):
					return true
				}
			}
			done++
		}
		return true
	})
	if err == nil && done < len(units) {
		err = units[done].err // the device is gone
	}
	return done, err
}

func (e *pollSender) close() {}

// iovecs appends the iovecs of the non-empty bufs to dst.
func iovecs(dst []unix.Iovec, bufs [][]byte) []unix.Iovec {
	for _, b := range bufs {
		if len(b) > 0 {
			dst = append(dst, unix.Iovec{Base: &b[0]})
			dst[len(dst)-1].SetLen(len(b))
		}
	}
	return dst
}

// readv and writev are the system calls on an iovec array that the caller keeps, which
// the wrappers in x/sys/unix allocate on each call.
func readv(fd int, iov []unix.Iovec) (int, error) {
	n, _, errno := unix.Syscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func writev(fd int, iov []unix.Iovec) (int, error) {
	n, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
