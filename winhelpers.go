package wintun

// Pure helpers of the Windows side, free of Windows-only imports so that they are
// tested on Linux: adapter name rules, option handling, GUID and LUID layouts, prefix
// normalization, FILETIME conversion, the wait for an adapter's IP interfaces and the
// driver's counters in Stats.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// winAdapterNameMax is Wintun's MAX_ADAPTER_NAME: a name is at most 127 UTF-16 code
// units plus the terminating zero.
const winAdapterNameMax = 128

// winNameRefused are characters Windows refuses in a network connection's name (the
// rename dialog of ncpa.cpl rejects them); refusing them here gives a clear error
// before any system call.
const winNameRefused = `\/:*?"<>|`

// checkWindowsName validates an adapter name with Windows' rules: 1 to 127 UTF-16
// code units of valid UTF-8, no control characters, none of \ / : * ? " < > |, and no
// leading or trailing space (Windows trims it, so the name would not match later).
func checkWindowsName(name string) error {
	switch {
	case name == "":
		return errors.New("wintun: empty adapter name")
	case !utf8.ValidString(name):
		return fmt.Errorf("wintun: adapter name %q is not valid UTF-8", name)
	}
	if n := len(utf16.Encode([]rune(name))); n >= winAdapterNameMax {
		return fmt.Errorf("wintun: adapter name %q is %d UTF-16 code units long; Wintun allows at most %d", name, n, winAdapterNameMax-1)
	}
	if strings.TrimSpace(name) != name {
		return fmt.Errorf("wintun: adapter name %q starts or ends with a space", name)
	}
	for _, r := range name {
		if r < ' ' || r == 0x7f || strings.ContainsRune(winNameRefused, r) {
			return fmt.Errorf("wintun: adapter name %q has a character Windows refuses (%q)", name, r)
		}
	}
	return nil
}

// errNotOnWindows builds the error of an option that Windows cannot honour.
func errNotOnWindows(option, why string) error {
	return fmt.Errorf("wintun: %s is not supported on Windows: %s: %w", option, why, errors.ErrUnsupported)
}

// windowsConfig applies CreateAdapter's options as the Windows side understands them.
// WithMTU applies. WithPersist, WithOwner and WithGroup are refused with an error
// satisfying errors.Is(err, errors.ErrUnsupported) rather than ignored, so that a
// program relying on them learns it at once.
func windowsConfig(opts []Option) (config, error) {
	cfg := config{owner: -1, group: -1}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.persist:
		return cfg, errNotOnWindows("WithPersist", "wintun.dll removes an adapter when the handle that created it is closed")
	case cfg.owner >= 0:
		return cfg, errNotOnWindows("WithOwner", "Wintun adapters are created and opened by Administrators only")
	case cfg.group >= 0:
		return cfg, errNotOnWindows("WithGroup", "Wintun adapters are created and opened by Administrators only")
	case cfg.mtu != 0 && (cfg.mtu < 68 || cfg.mtu > PacketSizeMax):
		return cfg, fmt.Errorf("wintun: invalid MTU %d: want 68 to %d", cfg.mtu, PacketSizeMax)
	}
	return cfg, nil
}

// winGUID has the layout of Windows' GUID (and of golang.org/x/sys/windows.GUID, to
// which it converts): the first three groups are integers, stored little-endian in
// memory, the last eight bytes are stored as written.
type winGUID struct {
	Data1 uint32
	Data2 uint16
	Data3 uint16
	Data4 [8]byte
}

// toWinGUID converts g (bytes in the order of its string form) to Windows' layout.
func toWinGUID(g GUID) winGUID {
	w := winGUID{
		Data1: binary.BigEndian.Uint32(g[0:4]),
		Data2: binary.BigEndian.Uint16(g[4:6]),
		Data3: binary.BigEndian.Uint16(g[6:8]),
	}
	copy(w.Data4[:], g[8:16])
	return w
}

// fromWinGUID is the inverse of toWinGUID.
func fromWinGUID(w winGUID) GUID {
	var g GUID
	binary.BigEndian.PutUint32(g[0:4], w.Data1)
	binary.BigEndian.PutUint16(g[4:6], w.Data2)
	binary.BigEndian.PutUint16(g[6:8], w.Data3)
	copy(g[8:16], w.Data4[:])
	return g
}

// NET_LUID layout: 24 reserved bits, a 24-bit NetLuidIndex (not the interface index:
// Windows converts between them with ConvertInterfaceLuidToIndex) and a 16-bit
// interface type.
func luidNetIndex(luid uint64) uint32 { return uint32(luid>>24) & 0xFFFFFF }
func luidIfType(luid uint64) uint16   { return uint16(luid >> 48) }

// ifTypePropVirtual is IF_TYPE_PROP_VIRTUAL, the interface type of Wintun adapters.
const ifTypePropVirtual = 53

// Address families as Windows numbers them (ws2def.h).
const (
	winAFUnspec = 0
	winAFInet   = 2
	winAFInet6  = 23
)

// unspecifiedFor returns the unspecified address of a's family: the next hop of an
// on-link route.
func unspecifiedFor(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// fileTimeUnixOffset is the number of seconds from 1601-01-01, where Windows' FILETIME
// counts from, to 1970-01-01.
const fileTimeUnixOffset = 11644473600

// fileTime converts a FILETIME (100 ns intervals since 1601-01-01 UTC) to a time. It
// splits seconds from the rest first: the whole count in nanoseconds overflows an
// int64 (time.Duration) for any date after 1893.
func fileTime(ft uint64) time.Time {
	sec := int64(ft/10_000_000) - fileTimeUnixOffset
	nsec := int64(ft%10_000_000) * 100
	return time.Unix(sec, nsec).UTC()
}

// wintunZipArch returns the directory of the wintun.dll zip that holds the DLL for a
// Go architecture: the zip names 386 "x86".
func wintunZipArch(goarch string) string {
	if goarch == "386" {
		return "x86"
	}
	return goarch
}

// awaitFamilies waits for the IP interfaces (IPv4, IPv6) of a new adapter, which
// Windows creates some time after the adapter itself, and returns the families of want
// that are present when it stops. present reports whether a family's interface exists
// now; changed receives whenever an interface appears (the interface-change callback,
// registered before the adapter was created, so that no arrival is missed). It stops
// when all of want are present, when deadline fires, or when grace (called once the
// first family is present) fires: a family that lags far behind the first is most
// likely unbound from the adapter (IPv6 disabled), and is configured if it arrives
// later.
func awaitFamilies(want []uint16, present func(uint16) bool, changed <-chan struct{}, deadline <-chan time.Time, grace func() <-chan time.Time) []uint16 {
	var graceC <-chan time.Time
	last := false
	for {
		var got []uint16
		for _, f := range want {
			if present(f) {
				got = append(got, f)
			}
		}
		if last || len(got) == len(want) {
			return got
		}
		if len(got) > 0 && graceC == nil {
			graceC = grace()
		}
		select {
		case <-changed:
		case <-deadline:
			last = true
		case <-graceC:
			last = true
		}
	}
}

// familyName names an address family in messages.
func familyName(f uint16) string {
	switch f {
	case winAFInet:
		return "IPv4"
	case winAFInet6:
		return "IPv6"
	}
	return fmt.Sprintf("family %d", f)
}

// driverCounters are the counters of the Wintun driver that Stats uses, from the
// adapter's MIB_IF_ROW2. The driver counts from the system's side: "out" is towards
// the application (ReceivePacket), "in" from it (SendPacket).
type driverCounters struct {
	inDiscards, inErrors, outDiscards uint64
}

// withDriverCounters fills the fields of st that wintun.dll keeps no count for from
// the driver's counters: ReceiveDropsRingFull from OutDiscards (packets for the
// application that found the receive ring full or no session running) and SendErrors
// from InDiscards and InErrors (packets the driver refused, which include the invalid
// ones SendDiscardsInvalid counts too).
func withDriverCounters(st Stats, c driverCounters) Stats {
	st.ReceiveDropsRingFull = c.outDiscards
	st.SendErrors = c.inDiscards + c.inErrors
	return st
}
