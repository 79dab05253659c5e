//go:build linux

// Package uring is the small part of io_uring that the sessions use: a ring, its
// submission and completion queues, multishot reads into a provided buffer ring, and a
// wait for completions with a timeout. The rings and the buffers that the kernel fills
// while nobody waits are mmap'd; writes may name Go memory (iovecs and what they point
// to), since their caller waits for their completions, while it keeps that memory
// reachable, and Go's heap does not move. user_data carries indices, not pointers.
package uring

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Opcodes, flags and offsets from linux/io_uring.h.
const (
	OpNop           = 0
	OpWritev        = 2
	OpPollAdd       = 6
	OpAsyncCancel   = 14
	OpReadMultishot = 49

	sqeBufferSelect = 1 << 5
	// SQELink links an entry to the next: that one starts only once this one has
	// succeeded, and fails with ECANCELED otherwise.
	SQELink = 1 << 2

	CQEFBuffer = 1 << 0
	CQEFMore   = 1 << 1

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3
	setupCQSize    = 1 << 3
	sqCQOverflow   = 1 << 1

	registerProbe     = 8
	registerPbufRing  = 22
	featSingleMmap    = 1 << 0
	pbufRingMmapAlign = 4096
)

// SQE is struct io_uring_sqe.
type SQE struct {
	Opcode      uint8
	Flags       uint8
	Ioprio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32
	UserData    uint64
	BufIndex    uint16 // buf_index or buf_group
	Personality uint16
	SpliceFdIn  int32
	Addr3       uint64
	_           uint64
}

// CQE is struct io_uring_cqe.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  [10]uint32 // head, tail, mask, entries, flags, dropped, array, resv1, user_addr (u64)
	cqOff                                                                  [10]uint32 // head, tail, mask, entries, overflow, cqes, flags, resv1, user_addr (u64)
}

// Ring is an io_uring instance. It is not safe for concurrent use.
type Ring struct {
	fd                    int
	sqMem, cqMem, sqeMem  []byte
	sqHead, sqTail, sqArr unsafe.Pointer
	sqFlags               unsafe.Pointer
	sqMask, sqEntries     uint32
	cqHead, cqTail        unsafe.Pointer
	cqMask                uint32
	cqes                  unsafe.Pointer
	sqes                  unsafe.Pointer
	pending               uint32 // SQEs filled but not yet submitted
}

// ErrUnsupported reports a kernel (or a seccomp profile, or the io_uring_disabled
// sysctl) that does not let this process use io_uring.
var ErrUnsupported = errors.New("uring: io_uring not available")

// New sets up a ring with room for entries submissions and cqEntries completions (0:
// the kernel's default, twice entries).
func New(entries, cqEntries uint32) (*Ring, error) {
	var p params
	if cqEntries > 0 {
		p.flags, p.cqEntries = setupCQSize, cqEntries
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrUnsupported, errno)
	}
	r := &Ring{fd: int(fd)}
	sqSize := int(p.sqOff[6] + p.sqEntries*4)
	cqSize := int(p.cqOff[5] + p.cqEntries*uint32(unsafe.Sizeof(CQE{})))
	if p.features&featSingleMmap != 0 {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if r.sqMem, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("uring: mmap SQ: %w", err)
	}
	r.cqMem = r.sqMem
	if p.features&featSingleMmap == 0 {
		if r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			r.Close()
			return nil, fmt.Errorf("uring: mmap CQ: %w", err)
		}
	}
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(SQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("uring: mmap SQEs: %w", err)
	}
	sq, cq := unsafe.Pointer(&r.sqMem[0]), unsafe.Pointer(&r.cqMem[0])
	r.sqHead, r.sqTail = unsafe.Add(sq, p.sqOff[0]), unsafe.Add(sq, p.sqOff[1])
	r.sqMask, r.sqEntries = *(*uint32)(unsafe.Add(sq, p.sqOff[2])), p.sqEntries
	r.sqArr = unsafe.Add(sq, p.sqOff[6])
	r.sqFlags = unsafe.Add(sq, p.sqOff[4])
	r.cqHead, r.cqTail = unsafe.Add(cq, p.cqOff[0]), unsafe.Add(cq, p.cqOff[1])
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.cqOff[2]))
	r.cqes = unsafe.Add(cq, p.cqOff[5])
	r.sqes = unsafe.Pointer(&r.sqeMem[0])
	return r, nil
}

// Close unmaps the ring and closes it; the kernel cancels what is still pending.
func (r *Ring) Close() error {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && (r.sqMem == nil || &r.cqMem[0] != &r.sqMem[0]) {
		unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		unix.Munmap(r.sqMem)
	}
	r.sqeMem, r.cqMem, r.sqMem = nil, nil, nil
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
	return nil
}

// Supports reports whether the kernel knows opcode op.
func (r *Ring) Supports(op uint8) bool {
	var probe struct { // struct io_uring_probe with room for every opcode
		lastOp, opsLen uint8
		_              uint16
		_              [3]uint32
		ops            [256]struct {
			op    uint8
			_     uint8
			flags uint16 // IO_URING_OP_SUPPORTED
			_     uint32
		}
	}
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerProbe, uintptr(unsafe.Pointer(&probe)), uintptr(len(probe.ops)), 0, 0)
	return errno == 0 && op <= probe.lastOp && probe.ops[op].flags&1 != 0
}

// SQE returns the next free submission entry, zeroed, or nil when the queue is full.
func (r *Ring) SQE() *SQE {
	head := atomic.LoadUint32((*uint32)(r.sqHead))
	tail := *(*uint32)(r.sqTail) + r.pending
	if tail-head >= r.sqEntries {
		return nil
	}
	i := tail & r.sqMask
	*(*uint32)(unsafe.Add(r.sqArr, i*4)) = i
	sqe := (*SQE)(unsafe.Add(r.sqes, uintptr(i)*unsafe.Sizeof(SQE{})))
	*sqe = SQE{}
	r.pending++
	return sqe
}

// Submit hands the filled entries to the kernel and, with wait > 0, waits until that
// many completions are there.
func (r *Ring) Submit(wait uint32) (int, error) {
	atomic.StoreUint32((*uint32)(r.sqTail), *(*uint32)(r.sqTail)+r.pending)
	n := r.pending
	r.pending = 0
	flags := uintptr(0)
	if wait > 0 {
		flags = enterGetEvents
	}
	for {
		done, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), uintptr(wait), flags, 0, 0)
		if errno == unix.EINTR {
			n = 0 // already submitted
			continue
		}
		if errno != 0 {
			return int(done), errno
		}
		return int(done), nil
	}
}

// Completions calls f for each completion available now, then consumes them. When
// the completion queue overflowed, the kernel keeps the rest aside until asked: they
// are fetched and handled too.
func (r *Ring) Completions(f func(*CQE)) int {
	n := r.completions(f)
	for atomic.LoadUint32((*uint32)(r.sqFlags))&sqCQOverflow != 0 {
		if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 0, 0, enterGetEvents, 0, 0); errno != 0 && errno != unix.EINTR {
			break
		}
		m := r.completions(f)
		n += m
		if m == 0 {
			break
		}
	}
	return n
}

func (r *Ring) completions(f func(*CQE)) int {
	head := *(*uint32)(r.cqHead)
	tail := atomic.LoadUint32((*uint32)(r.cqTail))
	n := 0
	for ; head != tail; head++ {
		f((*CQE)(unsafe.Add(r.cqes, uintptr(head&r.cqMask)*unsafe.Sizeof(CQE{}))))
		n++
	}
	atomic.StoreUint32((*uint32)(r.cqHead), head)
	return n
}

// Wait blocks the calling thread until at least one completion is there, or until
// timeout has passed (unix.ETIME). It returns unix.EINTR when a signal interrupted it.
func (r *Ring) Wait(timeout time.Duration) error {
	ts := unix.NsecToTimespec(int64(timeout))
	arg := struct { // struct io_uring_getevents_arg
		sigmask   uint64
		sigmaskSz uint32
		minWait   uint32
		ts        uint64
	}{sigmaskSz: 8, ts: uint64(uintptr(unsafe.Pointer(&ts)))}
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 0, 1, enterGetEvents|enterExtArg,
		uintptr(unsafe.Pointer(&arg)), unsafe.Sizeof(arg))
	runtime.KeepAlive(&ts) // the kernel read it through a uintptr in arg
	if errno != 0 {
		return errno
	}
	return nil
}

// BufRing is a provided buffer ring: count buffers of size bytes each, in mmap'd
// memory, that multishot reads fill and the application gives back.
type BufRing struct {
	ring  []byte // count io_uring_buf entries of 16 bytes; the tail overlaps entry 0
	bufs  []byte
	size  int
	count uint16
	tail  uint16
	group uint16
}

// RegisterBufRing registers count (a power of two) buffers of size bytes as buffer
// group group.
func (r *Ring) RegisterBufRing(group uint16, count uint16, size int) (*BufRing, error) {
	b := &BufRing{size: size, count: count, group: group}
	var err error
	if b.ring, err = unix.Mmap(-1, 0, int(count)*16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("uring: buffer ring: %w", err)
	}
	if b.bufs, err = unix.Mmap(-1, 0, int(count)*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		unix.Munmap(b.ring)
		return nil, fmt.Errorf("uring: buffers: %w", err)
	}
	reg := struct {
		ringAddr    uint64
		ringEntries uint32
		bgid        uint16
		flags       uint16
		resv        [3]uint64
	}{ringAddr: uint64(uintptr(unsafe.Pointer(&b.ring[0]))), ringEntries: uint32(count), bgid: group}
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerPbufRing, uintptr(unsafe.Pointer(&reg)), 1, 0, 0); errno != 0 {
		b.Free()
		return nil, fmt.Errorf("%w: register buffer ring: %v", ErrUnsupported, errno)
	}
	for i := uint16(0); i < count; i++ {
		b.Give(i)
	}
	b.Publish()
	return b, nil
}

// Buffer returns buffer id.
func (b *BufRing) Buffer(id uint16) []byte {
	return b.bufs[int(id)*b.size : (int(id)+1)*b.size]
}

// Give puts buffer id back in the ring; Publish makes the given buffers visible.
func (b *BufRing) Give(id uint16) {
	e := unsafe.Pointer(&b.ring[int(b.tail&(b.count-1))*16])
	*(*uint64)(e) = uint64(uintptr(unsafe.Pointer(&b.bufs[int(id)*b.size])))
	*(*uint32)(unsafe.Add(e, 8)) = uint32(b.size)
	*(*uint16)(unsafe.Add(e, 12)) = id
	b.tail++
}

// Publish stores the ring's tail for the kernel. The 16-bit tail shares a 32-bit word
// with the first entry's buffer id (little-endian layout: amd64, arm64).
func (b *BufRing) Publish() {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b.ring[12])), uint32(b.tail)<<16|uint32(*(*uint16)(unsafe.Pointer(&b.ring[12]))))
}

// Free unmaps the buffers; the ring they were registered with must be closed first.
func (b *BufRing) Free() {
	unix.Munmap(b.ring)
	unix.Munmap(b.bufs)
}

// Group is the buffer group id to name in a multishot read.
func (b *BufRing) Group() uint16 { return b.group }
