// Package wintun is Wintun's API in Go: a layer 3 TUN adapter whose packets move
// between the application and the kernel through a pair of shared rings, in bundles,
// rather than a system call per packet.
//
// [Wintun] is the TUN driver the WireGuard authors wrote for Windows. This package has
// its calls and its ring semantics on Linux, over the kernel's own tun driver (no
// kernel module, no cgo), and on Windows over the official wintun.dll. An [Adapter] is
// a virtual network card that carries IPv4 and IPv6 packets, with no Ethernet
// emulation: the program plays the network behind it, reading the packets the system
// sends out through the adapter and writing the packets the system receives. Package
// go.wintun.dev/wintun/wgtun makes an adapter a wireguard-go tun.Device.
//
// # The API in short
//
// [CreateAdapter] creates an adapter and the handle it returns removes it on
// [Adapter.Close]; [OpenAdapter] opens an adapter this library created. A [Session],
// from [Adapter.StartSession], holds two rings:
//
//   - [Session.ReceivePacket] returns the next packet the system sent through the
//     adapter, as a slice into the receive ring (no copy), or [ErrNoMoreItems] when the
//     ring is empty; [Session.ReleaseReceivePacket] gives the packet's space back.
//     Packets may be released in any order.
//   - [Session.ReadWaitEvent] is a channel to wait on after ErrNoMoreItems: it receives
//     when packets arrive, and is closed when the session ends.
//   - [Session.AllocateSendPacket] reserves room in the send ring for a packet of a
//     given size, or returns [ErrBufferOverflow] when the ring is full; the program
//     writes the packet into that slice and [Session.SendPacket] commits it, and the
//     system receives it.
//   - [Session.End] ends the session.
//
// None of the six packet calls makes a system call: goroutines of the session play the
// driver's part and move packets between the rings and the kernel. Wintun's calls map
// one to one:
//
//	WintunCreateAdapter, WintunOpenAdapter     CreateAdapter, OpenAdapter
//	WintunCloseAdapter                         Adapter.Close
//	WintunDeleteDriver                         Uninstall: removes this library's unused adapters
//	WintunGetAdapterLUID                       Adapter.LUID
//	WintunGetRunningDriverVersion              RunningVersion
//	WintunSetLogger                            SetLogger, with a *slog.Logger
//	WintunStartSession, WintunEndSession       Adapter.StartSession, Session.End
//	WintunGetReadWaitEvent                     Session.ReadWaitEvent: a channel, not a handle
//	WintunReceivePacket                        Session.ReceivePacket
//	WintunReleaseReceivePacket                 Session.ReleaseReceivePacket
//	WintunAllocateSendPacket                   Session.AllocateSendPacket
//	WintunSendPacket                           Session.SendPacket
//	ERROR_NO_MORE_ITEMS, ERROR_BUFFER_OVERFLOW ErrNoMoreItems, ErrBufferOverflow
//	ERROR_INVALID_DATA                         ErrInvalidData
//	ERROR_HANDLE_EOF                           ErrSessionEnded, ErrAdapterGone (io.EOF errors)
//
// Beyond Wintun's calls: the adapter's configuration ([Adapter.AddAddress],
// [Adapter.AddRoute], [Adapter.SetMTU] and their companions, through netlink on Linux
// and the IP helper API on Windows), counters ([Adapter.Stats]), options at creation
// ([WithMTU], [WithPersist], [WithOwner], [WithGroup]) and, on Linux, calls for bundles
// of packets ([Session.ReceivePackets], [Session.ReleaseReceivePackets],
// [Session.AllocateSendPackets], [Session.SendPackets]), TCP and UDP super-packets for
// programs that segment themselves ([WithGSO]), the io_uring engine ([WithIOUring]),
// the coalescing of sent packets ([WithCoalescing]) and packet capture ([WithCapture]).
//
// The package's example answers ping; the others forward packets between two adapters
// and wait for packets and a context at once.
//
// # How Wintun maps onto Linux
//
// An adapter is a multiqueue tun device (IFF_TUN, IFF_NO_PI, IFF_MULTI_QUEUE,
// IFF_VNET_HDR) that CreateAdapter brings up. Its name follows the kernel's rules
// ([CheckName]). Its tunnel type and GUID are kept in the interface's alias
// ("wintun:<guid>:<tunnel type>", shown by `ip link`), and OpenAdapter and Uninstall
// refuse every interface without one, so they never touch another program's
// interfaces. The LUID has Windows' NET_LUID layout: interface type 53
// (IF_TYPE_PROP_VIRTUAL) and the interface index.
//
// Creation: until a tun device has an owner, any user who can open /dev/net/tun can
// attach to it by name. CreateAdapter therefore creates the device in a private network
// namespace, sets its owner, group and persistence there, and only then moves it into
// the caller's namespace. A creator without CAP_SYS_ADMIN creates it in place and checks
// afterwards that no other process attached to it or changed it; if one did, it deletes
// the device and fails with an error satisfying errors.Is(err, syscall.EBUSY).
//
// Lifetime: the handle that created an adapter keeps it alive; Close, or the end of the
// creating process, removes it, so no adapter is left behind. [WithPersist] makes it
// outlive its creator until `ip link del` or [Uninstall].
//
// Sessions: each session is one more queue of the device. Several may run on one
// adapter (Wintun allows one), from any handle or process, and the kernel spreads flows
// over them. The carrier is on while at least one session runs, like Wintun's media
// state. The rings have Wintun's layout and checks; packets the kernel sends while the
// receive ring is full are dropped and counted (Stats.ReceiveDropsRingFull), because
// the kernel does not wait, and packets the program sends that are not IPv4 or IPv6 are
// dropped and counted (Stats.SendDiscardsInvalid) while the session goes on.
//
// End of life: after [Session.End], [Adapter.Close], `ip link del`, or the destruction
// of a network namespace the adapter was moved into after the session started (a
// session keeps the namespace it started in alive), every session call returns an
// io.EOF error, ReadWaitEvent is closed, and the session's goroutines are gone. The
// rings are ordinary Go memory, so slices still held stay valid.
//
// Namespaces: every call opens its tun file descriptors and netlink sockets in the
// network namespace of the calling goroutine's thread, where the adapter must be. An
// adapter moved into another namespace keeps its sessions.
//
// Adopted sessions: [AdoptSession] runs a session, with the same calls, on a tun
// queue that the program did not open but was handed (by Android's VpnService, a
// privileged parent, systemd's file-descriptor store). The device stays the host's:
// the session changes neither its addresses nor its carrier, and has offloads only if
// the device was set up with IFF_VNET_HDR.
//
// The repository's docs/linux.md has the details of each point.
//
// # Windows
//
// On Windows the package has the same API over the official binding
// golang.zx2c4.com/wintun and wintun.dll, which the program ships next to its
// executable (the DLL is loaded from the executable's directory or System32 only).
// Creating and opening adapters needs Administrator rights, an adapter has one session
// at a time, and the packet slices are the DLL's memory: do not use them after End.
// WithPersist, WithOwner and WithGroup give errors satisfying
// errors.Is(err, errors.ErrUnsupported), and StartSession refuses WithGSO. The
// repository's docs/windows.md says how to ship the DLL and what differs.
//
// # Other systems
//
// Elsewhere (macOS, the BSDs, ...) the package has the same API, so that programs that
// import it, directly or through wgtun, still build; every call that returns an error
// returns one satisfying errors.Is(err, errors.ErrUnsupported).
//
// # Engines and offloads
//
// On Linux a session's engine reads from the kernel through Go's poller and writes
// with io_uring, a bundle of writes per system call; where io_uring is not allowed
// (seccomp, the io_uring_disabled sysctl, an old kernel) it writes through the poller
// too and logs why. [WithIOUring] (or WINTUN_ENGINE) chooses otherwise: io_uring for
// the reads as well (multishot reads, less CPU per small packet, one OS thread per
// session waiting in the kernel), or no io_uring at all.
//
// Every session switches on the kernel's TCP and UDP segmentation offloads: the kernel
// hands over super-packets of up to 64 KiB, which a session splits into ordinary
// packets with correct headers and checksums before they reach the ring
// (Stats.ReceivedSuperPackets), so the Wintun calls see ordinary packets only. In the
// other direction, consecutive TCP segments, and UDP datagrams, of one flow are
// coalesced into one super-packet per write (Stats.SentSuperPackets), by the rules of
// the kernel's GRO and only when their checksums verify. [WithCoalescing] sets this per
// session; WINTUN_OFFLOAD=0 switches every offload off, WINTUN_COALESCE_TCP=0 and
// WINTUN_COALESCE_UDP=0 the coalescing of one protocol. A session started [WithGSO]
// passes super-packets through whole, each preceded by a [GSOHeaderLen]-byte
// virtio_net_hdr.
//
// # Errors
//
// [ErrNoMoreItems] (the receive ring is empty: wait on ReadWaitEvent) and
// [ErrBufferOverflow] (the send ring is full: drop the packet or retry later) are
// momentary; the session goes on.
//
// [ErrSessionEnded] (after End) and [ErrAdapterGone] (the adapter was removed) are
// final, and both satisfy errors.Is(err, io.EOF), as Wintun's ERROR_HANDLE_EOF does.
// [ErrInvalidData] reports a corrupt ring and is fatal for the session as well: End it.
// On Linux the rings are ordinary memory that only this package and the program write,
// so it means that the program wrote outside the packets it was given.
//
// Adapter calls wrap the system's errors: an existing name satisfies
// errors.Is(err, fs.ErrExist), a missing adapter fs.ErrNotExist, and missing rights
// fs.ErrPermission (the kernel's EPERM, which the message explains).
//
// # Concurrency
//
// Every exported function and method is safe for concurrent use. Several goroutines may
// receive, release, allocate and send on one session; End and Adapter.Close wake every
// goroutine waiting on ReadWaitEvent and make every call in flight return. A packet
// slice belongs to the program from ReceivePacket until its release, and from
// AllocateSendPacket until it is sent; only that exact slice releases or sends it. A
// [Capture] may be called from several goroutines at once.
//
// # Privileges
//
// Creating an adapter, changing its configuration and [Uninstall] need CAP_NET_ADMIN
// (root) and read-write access to /dev/net/tun; creating it in a private namespace
// needs CAP_SYS_ADMIN as well. A program without CAP_NET_ADMIN may open an adapter and
// start sessions on it when the adapter was created for it: [WithOwner] names a user,
// [WithGroup] a group, and with both the kernel admits only the owner, and only while
// it is in the group: both must match, not either. An adapter created with neither is
// owned by its creator, because the kernel would otherwise let anyone who can open
// /dev/net/tun attach to it. A program that lacks the rights gets an error satisfying
// errors.Is(err, syscall.EPERM), whose message says what is needed.
//
// [Wintun]: https://www.wintun.net/
package wintun
