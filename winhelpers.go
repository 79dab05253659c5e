package wintun

// Pure helpers of the Windows side, free of Windows-only imports so that they are
// tested on Linux: adapter name rules, option handling, GUID and LUID layouts, and the
// byte layout of SOCKADDR_INET.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
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

// sockaddrInet is the memory of a SOCKADDR_INET (28 bytes): family (little-endian),
// port (big-endian), then for IPv4 the address at 4, and for IPv6 the flow
// information at 4, the address at 8 and the scope id at 24.
type sockaddrInet [28]byte

// putAddr stores a in s with port 0; zones are not carried (scope id 0).
func (s *sockaddrInet) putAddr(a netip.Addr) error {
	*s = sockaddrInet{}
	a = a.Unmap()
	switch {
	case a.Is4():
		binary.LittleEndian.PutUint16(s[0:], winAFInet)
		b := a.As4()
		copy(s[4:8], b[:])
	case a.Is6():
		binary.LittleEndian.PutUint16(s[0:], winAFInet6)
		b := a.As16()
		copy(s[8:24], b[:])
	default:
		return fmt.Errorf("wintun: invalid address %v", a)
	}
	return nil
}

// addr returns the address stored in s, or false for another family.
func (s *sockaddrInet) addr() (netip.Addr, bool) {
	switch binary.LittleEndian.Uint16(s[0:]) {
	case winAFInet:
		return netip.AddrFrom4([4]byte(s[4:8])), true
	case winAFInet6:
		return netip.AddrFrom16([16]byte(s[8:24])), true
	}
	return netip.Addr{}, false
}

// winFamily returns the Windows address family of a's kind.
func winFamily(a netip.Addr) uint16 {
	if a.Unmap().Is4() {
		return winAFInet
	}
	return winAFInet6
}
