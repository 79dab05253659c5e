package wintun

import "time"

// Option configures CreateAdapter.
type Option func(*config)

type config struct {
	mtu          int
	persist      bool
	owner, group int
}

// WithMTU sets the adapter's MTU at creation (the kernel's default is 1500).
func WithMTU(mtu int) Option { return func(c *config) { c.mtu = mtu } }

// WithPersist makes the adapter outlive its creator's handle and process: Close then
// only releases the handle, and the adapter stays until deleted (`ip link del`, or
// Uninstall once no session uses it).
func WithPersist() Option { return func(c *config) { c.persist = true } }

// WithOwner lets the user uid start sessions on the adapter without CAP_NET_ADMIN.
// With WithGroup as well, both must hold, not either: the kernel's tun driver lets a
// process without CAP_NET_ADMIN attach only when its effective uid is the owner (if an
// owner is set) and it is in the group (if a group is set). Without WithOwner or
// WithGroup, the creating user is the owner: the kernel would otherwise let anyone who
// can open /dev/net/tun attach to the adapter.
func WithOwner(uid int) Option { return func(c *config) { c.owner = uid } }

// WithGroup lets members of group gid (as effective or supplementary group) start
// sessions on the adapter without CAP_NET_ADMIN. With WithOwner as well, only the
// owner may, and only while in the group: the kernel requires both, not either.
func WithGroup(gid int) Option { return func(c *config) { c.group = gid } }

// SessionOption configures StartSession.
type SessionOption func(*sessionConfig)

type sessionConfig struct {
	capture Capture
	gso     bool
	uring   *bool // nil: WINTUN_ENGINE decides
	// nil: on unless WINTUN_COALESCE_TCP=0, WINTUN_COALESCE_UDP=0 or WINTUN_OFFLOAD=0
	coalesceTCP, coalesceUDP *bool
}

// Direction says which way a packet crossed a session.
type Direction int

const (
	// Received packets came from the operating system (ReceivePacket).
	Received Direction = iota
	// Sent packets went to the operating system (SendPacket).
	Sent
)

// String returns "received" or "sent".
func (d Direction) String() string {
	if d == Received {
		return "received"
	}
	return "sent"
}

// Capture receives a copy of the traffic of a session, e.g. to write a packet capture
// file.
type Capture interface {
	// CapturePacket is called for every packet the application receives and every
	// packet the kernel accepts, from the session's reading and writing goroutines,
	// which may call it concurrently. The packet is valid only during the call; a slow
	// Capture slows the session.
	CapturePacket(dir Direction, timestamp time.Time, packet []byte)
}

// WithCapture hands every packet that crosses the session to c. Without it the session
// pays nothing for capturing.
func WithCapture(c Capture) SessionOption { return func(s *sessionConfig) { s.capture = c } }

// GSOHeaderLen is the length of the segmentation header (Linux's struct
// virtio_net_hdr) that starts every packet of a session started WithGSO.
const GSOHeaderLen = 10

// WithGSO starts a session that moves TCP and UDP super-packets of up to 64 KiB
// instead of ordinary packets, for applications that handle segmentation themselves
// (forwarders, tunnels that segment after encryption). Every packet it receives, and
// every packet committed to it, begins with a GSOHeaderLen-byte virtio_net_hdr in
// host byte order (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset) that
// describes how to segment it and where its partial checksum is; a packet with
// gso_type 0 is an ordinary packet. Super-packets are limited so that each fits a ring
// record; an ordinary packet longer than PacketSizeMax-GSOHeaderLen (possible only
// with an MTU above 65525) does not fit one, and is dropped and counted in
// Stats.ReceiveDropsOversize. Sessions with and without WithGSO may share an adapter. Linux only: on
// Windows StartSession refuses it.
func WithGSO() SessionOption { return func(s *sessionConfig) { s.gso = true } }

// WithIOUring chooses how a Linux session talks to the kernel. By default it reads
// through Go's poller (non-blocking reads, no thread kept waiting) and writes with
// io_uring, the writes of a bundle in one system call. WithIOUring(true) reads with
// io_uring too: a multishot read, less CPU per small packet, at the price of one OS
// thread per session waiting in the kernel, and with it one of Go's processors until
// the runtime takes it back (other goroutines of a busy program may wait).
// WithIOUring(false) uses no io_uring: a read and a write system call per packet.
// Without this option the environment variable WINTUN_ENGINE decides ("uring" or
// "poll"; anything else is the default). Where io_uring is not allowed (a seccomp
// profile, the io_uring_disabled sysctl, an old kernel) a session uses the poll
// engine and logs why. Ignored on Windows, whose driver shares the rings with the
// application itself.
func WithIOUring(on bool) SessionOption { return func(s *sessionConfig) { s.uring = &on } }

// WithCoalescing sets whether a Linux session coalesces runs of consecutive TCP
// segments, and of UDP datagrams, of one flow committed to its send ring into one
// super-packet per write, as the kernel's GRO would (Stats.SentSuperPackets). Both are
// on by default; without this option the environment can switch them off
// (WINTUN_COALESCE_TCP=0, WINTUN_COALESCE_UDP=0, or WINTUN_OFFLOAD=0 for every
// offload), for kernels known to mishandle such writes (UDP super-packets broke VXLAN
// and Geneve before Linux 6.8.5). A kernel that refuses the first coalesced write of a
// protocol (EINVAL) switches that protocol off for the session by itself, and the
// packets of the refused write go out one by one; once the kernel has taken one, a
// refused coalesced write counts its packets in Stats.SendErrors. No effect with WithGSO (the application's super-packets pass
// as they are), with offloads off, or on Windows.
func WithCoalescing(tcp, udp bool) SessionOption {
	return func(s *sessionConfig) { s.coalesceTCP, s.coalesceUDP = &tcp, &udp }
}
