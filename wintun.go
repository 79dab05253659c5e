package wintun

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"
)

const (
	// PacketSizeMax is the largest packet a session carries, in bytes.
	PacketSizeMax = 0xFFFF
	// RingCapacityMin is the smallest ring capacity StartSession accepts (128 KiB).
	RingCapacityMin = 0x20000
	// RingCapacityMax is the largest ring capacity StartSession accepts (64 MiB).
	RingCapacityMax = 0x4000000
)

var (
	// ErrNoMoreItems is returned by ReceivePacket when the ring holds no packet now;
	// wait on ReadWaitEvent and try again.
	ErrNoMoreItems = errors.New("wintun: no more items")
	// ErrBufferOverflow is returned by AllocateSendPacket when the ring has no room for
	// the packet now; the caller drops the packet or retries later.
	ErrBufferOverflow = errors.New("wintun: buffer overflow")
	// ErrInvalidData reports a corrupt ring. It is fatal for the session.
	ErrInvalidData = errors.New("wintun: invalid data")

	// ErrSessionEnded is returned by the session calls after End. It satisfies
	// errors.Is(err, io.EOF).
	ErrSessionEnded error = &eofError{"wintun: session ended"}
	// ErrAdapterGone is returned by the session calls once the adapter was removed:
	// Close of the handle that created it, `ip link del`, or on Linux the
	// destruction of the network namespace it is in. It satisfies
	// errors.Is(err, io.EOF).
	//
	// A network namespace is destroyed only once nothing refers to it, and every
	// session's tun queue refers to the namespace the session was started in. So
	// while a session started in the adapter's namespace runs, that namespace stays
	// (after `ip netns del`, after the processes in it exit) and the session goes on;
	// the namespace goes once the session ends. Its destruction ends a session with
	// ErrAdapterGone only when the adapter was moved there from where the session
	// started.
	ErrAdapterGone error = &eofError{"wintun: adapter is going away"}
)

// eofError is an end-of-file condition with a more precise message; callers test for
// it with errors.Is(err, io.EOF), as Wintun's ERROR_HANDLE_EOF.
type eofError struct{ msg string }

func (e *eofError) Error() string { return e.msg }
func (e *eofError) Unwrap() error { return io.EOF }

// GUID is an adapter's stable identity. Its bytes are in the order they are written in
// String, as in RFC 9562.
type GUID [16]byte

// String returns the GUID in the 8-4-4-4-12 hexadecimal form, in lower case.
func (g GUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], g[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], g[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], g[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], g[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], g[10:16])
	return string(b[:])
}

// ParseGUID parses the 8-4-4-4-12 form, in either case, optionally in braces as
// Windows writes it.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	t := s
	if len(t) == 38 && t[0] == '{' && t[37] == '}' {
		t = t[1:37]
	}
	if len(t) != 36 || t[8] != '-' || t[13] != '-' || t[18] != '-' || t[23] != '-' {
		return g, fmt.Errorf("wintun: invalid GUID %q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	h := t[0:8] + t[9:13] + t[14:18] + t[19:23] + t[24:36]
	if _, err := hex.Decode(g[:], []byte(h)); err != nil {
		return GUID{}, fmt.Errorf("wintun: invalid GUID %q: %w", s, err)
	}
	return g, nil
}

// newGUID returns a random (version 4) GUID.
func newGUID() (GUID, error) {
	var g GUID
	if _, err := rand.Read(g[:]); err != nil {
		return g, fmt.Errorf("wintun: random GUID: %w", err)
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g, nil
}

var logger atomic.Pointer[slog.Logger]

// SetLogger sets the logger that receives the library's diagnostics (dropped packets'
// causes, fallbacks, adapters that disappear). A nil logger turns logging off, which is
// the default. SetLogger may be called at any time from any goroutine.
func SetLogger(l *slog.Logger) { logger.Store(l) }

func logWarn(msg string, args ...any) {
	if l := logger.Load(); l != nil {
		l.Warn(msg, args...)
	}
}

// Stats counts what crossed an adapter's sessions, from the application's point of
// view: Receive is the direction of ReceivePacket (packets the operating system sent
// out through the adapter), Send the direction of SendPacket.
type Stats struct {
	ReceivedPackets uint64 // handed to the application through the receive ring
	ReceivedBytes   uint64
	// ReceiveDropsRingFull counts packets from the kernel dropped because the
	// application's receive ring had no room (it is not reading or not releasing).
	ReceiveDropsRingFull uint64
	ReceiveErrors        uint64 // failed reads from the kernel
	// ReceiveDropsKernel counts packets the kernel dropped on the adapter before any
	// session read them, mostly because its queue for the adapter was full: on
	// Linux the device's TX dropped counter, over the adapter's life and every
	// process's sessions. It is read from the kernel while a session runs or the
	// adapter is in the caller's network namespace, and is 0 otherwise. A session
	// lengthens the kernel's queue so that a burst that fits its ring fits there
	// too (see StartSession).
	ReceiveDropsKernel uint64
	// ReceiveDropsOversize counts packets from the kernel dropped because a ring
	// record cannot hold them: in a WithGSO session, packets longer than
	// PacketSizeMax-GSOHeaderLen (an MTU above 65525).
	ReceiveDropsOversize uint64
	// ReceivedSuperPackets counts the TCP and UDP super-packets the kernel handed
	// over (offloads) that a session split into ReceivedPackets.
	ReceivedSuperPackets uint64

	SentPackets uint64 // accepted by the kernel
	SentBytes   uint64
	// SendDiscardsInvalid counts packets the application committed that are not IPv4
	// (20 bytes or more, version 4) or IPv6 (40 bytes or more, version 6).
	SendDiscardsInvalid uint64
	SendErrors          uint64 // packets the kernel refused
	// SentSuperPackets counts the super-packets a session coalesced SentPackets into
	// before writing them (TCP segments of one flow, like the kernel's GRO).
	SentSuperPackets uint64
}

// stats is the adapter-wide, concurrently updated form of Stats.
type stats struct {
	// The receive and send counters are written by different threads: each group
	// has cache lines of its own.
	_                                                                          cacheLinePad
	rxPackets, rxBytes, rxDropsFull, rxDropsOversize, rxErrors, rxSuperPackets atomic.Uint64
	_                                                                          cacheLinePad
	txPackets, txBytes, txDiscardsInvalid, txErrorsKern, txSuperPackets        atomic.Uint64
	_                                                                          cacheLinePad
}

// cacheLinePad keeps what is written by one thread off the cache lines of what
// another writes.
type cacheLinePad [128]byte

func (s *stats) snapshot() Stats {
	return Stats{
		ReceivedPackets:      s.rxPackets.Load(),
		ReceivedBytes:        s.rxBytes.Load(),
		ReceiveDropsRingFull: s.rxDropsFull.Load(),
		ReceiveErrors:        s.rxErrors.Load(),
		ReceiveDropsOversize: s.rxDropsOversize.Load(),
		ReceivedSuperPackets: s.rxSuperPackets.Load(),
		SentPackets:          s.txPackets.Load(),
		SentBytes:            s.txBytes.Load(),
		SendDiscardsInvalid:  s.txDiscardsInvalid.Load(),
		SendErrors:           s.txErrorsKern.Load(),
		SentSuperPackets:     s.txSuperPackets.Load(),
	}
}

// validPacket reports whether p is an IP packet the kernel should be given: IPv4 of at
// least 20 bytes or IPv6 of at least 40, as Wintun's driver checks.
func validPacket(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	switch p[0] >> 4 {
	case 4:
		return len(p) >= 20
	case 6:
		return len(p) >= 40
	}
	return false
}

// checkCapacity validates a ring capacity as StartSession requires it.
func checkCapacity(capacity uint32) error {
	if capacity < RingCapacityMin || capacity > RingCapacityMax || capacity&(capacity-1) != 0 {
		return fmt.Errorf("wintun: invalid ring capacity %#x: want a power of two from %#x to %#x",
			capacity, RingCapacityMin, RingCapacityMax)
	}
	return nil
}

// CheckName reports why name cannot be an adapter name, or nil if it can: the rules
// CreateAdapter and OpenAdapter apply on this platform before any system call, for
// programs that validate their input early (such as the wintun command). Linux and
// the other Unix systems allow 1 to 15 bytes without '/', ':', '%' or white space;
// Windows 1 to 127 UTF-16 code units without control characters, \ / : * ? " < > |,
// or a leading or trailing space.
func CheckName(name string) error { return checkName(name) }

// plainPrefix returns p as the system must be given it. An IPv4-mapped IPv6 prefix
// (::ffff:a.b.c.d/n) names IPv4 addresses, so it becomes the IPv4 prefix
// a.b.c.d/(n-96); taken as it is, it would reach the system as an IPv4 address with
// a prefix length beyond 32. A mapped prefix shorter than /96 covers more than IPv4
// addresses and is refused.
func plainPrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("wintun: invalid prefix %v", p)
	}
	if !p.Addr().Is4In6() {
		return p, nil
	}
	if p.Bits() < 96 {
		return netip.Prefix{}, fmt.Errorf("wintun: prefix %v: an IPv4-mapped prefix must be /96 or longer", p)
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96), nil
}
