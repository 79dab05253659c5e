package wintun

// Tests of the Windows side's pure helpers; they run on every platform.

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

func TestRingErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		errno uint32
		want  error
	}{
		{259, ErrNoMoreItems},
		{111, ErrBufferOverflow},
		{13, ErrInvalidData},
		{38, ErrAdapterGone},
	} {
		// The sentinel itself, so that callers may compare with ==.
		if got := mapRingError("op", syscall.Errno(tc.errno)); got != tc.want {
			t.Errorf("mapRingError(%d) = %v, want %v", tc.errno, got, tc.want)
		}
		// From any other call the number keeps its own meaning and the operation.
		if got := mapWinError("create adapter", syscall.Errno(tc.errno)); !errors.Is(got, syscall.Errno(tc.errno)) || !strings.Contains(got.Error(), "create adapter") {
			t.Errorf("mapWinError(%d) = %v, want the errno and the operation kept", tc.errno, got)
		}
	}
	if !errors.Is(mapRingError("op", syscall.Errno(38)), io.EOF) {
		t.Error("ERROR_HANDLE_EOF is not an io.EOF error")
	}
	if _, ok := ringError(errors.New("other")); ok {
		t.Error("ringError took a non-errno error")
	}
}

func TestMapWinError(t *testing.T) {
	if mapWinError("op", nil) != nil {
		t.Error("nil error mapped to non-nil")
	}
	for _, tc := range []struct {
		errno  uint32
		target error
		text   string
	}{
		{2, fs.ErrNotExist, ""},
		{3, fs.ErrNotExist, ""},
		{1168, fs.ErrNotExist, ""},
		{183, fs.ErrExist, ""},
		{80, fs.ErrExist, ""},
		{5010, fs.ErrExist, ""},
		{5, fs.ErrPermission, "Administrator"},
		{1247, fs.ErrExist, "one session per adapter"},
		{0, nil, "without an error code"},
		{87, syscall.Errno(87), "op"},
	} {
		err := mapWinError("op", syscall.Errno(tc.errno))
		if err == nil || !strings.HasPrefix(err.Error(), "wintun: op") {
			t.Errorf("mapWinError(%d) = %v, want a wintun: op error", tc.errno, err)
			continue
		}
		if tc.target != nil && !errors.Is(err, tc.target) {
			t.Errorf("mapWinError(%d) = %v, not %v", tc.errno, err, tc.target)
		}
		if tc.errno != 0 && !errors.Is(err, syscall.Errno(tc.errno)) {
			t.Errorf("mapWinError(%d) = %v lost the original error", tc.errno, err)
		}
		if !strings.Contains(err.Error(), tc.text) {
			t.Errorf("mapWinError(%d) = %q, want it to mention %q", tc.errno, err, tc.text)
		}
	}
	other := errors.New("boom")
	if err := mapWinError("op", other); !errors.Is(err, other) {
		t.Errorf("mapWinError(non-errno) = %v, lost the cause", err)
	}
}

func TestDLLLoadError(t *testing.T) {
	dir := `C:\Program Files\Example`
	for _, tc := range []struct {
		errno    uint32
		notExist bool
		text     string
	}{
		{126, true, "not found"},
		{2, true, "not found"},
		{193, false, "another architecture"},
		{127, false, "too old"},
		{5, false, "cannot load"},
	} {
		err := dllLoadError(dir, "arm64", syscall.Errno(tc.errno))
		msg := err.Error()
		if errors.Is(err, fs.ErrNotExist) != tc.notExist {
			t.Errorf("%d: errors.Is(fs.ErrNotExist) = %v, want %v", tc.errno, !tc.notExist, tc.notExist)
		}
		for _, want := range []string{tc.text, dir, "arm64", "https://www.wintun.net/"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%d: %q does not mention %q", tc.errno, msg, want)
			}
		}
	}
}

func TestCheckWindowsName(t *testing.T) {
	good := []string{"demo", "WireGuard Tunnel", "wg0", "Ethernet 3", "tunnel-ü", strings.Repeat("x", 127), strings.Repeat("é", 127)}
	for _, n := range good {
		if err := checkWindowsName(n); err != nil {
			t.Errorf("checkWindowsName(%q) = %v", n, err)
		}
	}
	bad := []string{"", strings.Repeat("x", 128), strings.Repeat("😀", 64), " lead", "trail ", "a\x00b", "tab\there",
		"a\\b", "a/b", "a:b", "a*b", "a?b", `a"b`, "a<b", "a>b", "a|b", "\xff\xfe"}
	for _, n := range bad {
		if err := checkWindowsName(n); err == nil {
			t.Errorf("checkWindowsName(%q) = nil, want an error", n)
		}
	}
	// 63 four-byte runes are 126 UTF-16 code units: allowed.
	if err := checkWindowsName(strings.Repeat("😀", 63)); err != nil {
		t.Errorf("63 surrogate pairs: %v", err)
	}
}

func TestWindowsConfig(t *testing.T) {
	cfg, err := windowsConfig([]Option{WithMTU(1420)})
	if err != nil || cfg.mtu != 1420 {
		t.Fatalf("WithMTU(1420): cfg %+v, err %v", cfg, err)
	}
	if cfg, err := windowsConfig(nil); err != nil || cfg.mtu != 0 {
		t.Fatalf("no options: cfg %+v, err %v", cfg, err)
	}
	for name, o := range map[string]Option{
		"WithPersist": WithPersist(), "WithOwner": WithOwner(1000), "WithGroup": WithGroup(0),
	} {
		_, err := windowsConfig([]Option{WithMTU(1400), o})
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), name) ||
			!strings.Contains(err.Error(), "Windows") {
			t.Errorf("%s: err = %v, want an ErrUnsupported error naming it", name, err)
		}
	}
	for _, mtu := range []int{-1, 67, 0x10000} {
		if _, err := windowsConfig([]Option{WithMTU(mtu)}); err == nil {
			t.Errorf("WithMTU(%d) accepted", mtu)
		}
	}
}

func TestWinGUID(t *testing.T) {
	g, err := ParseGUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	if err != nil {
		t.Fatal(err)
	}
	w := toWinGUID(g)
	want := winGUID{0x6ba7b810, 0x9dad, 0x11d1, [8]byte{0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}}
	if w != want {
		t.Fatalf("toWinGUID = %+v, want %+v", w, want)
	}
	// In memory (little-endian, as on every Windows platform) the first three fields
	// are byte-swapped, as Windows stores GUIDs.
	if unsafe.Sizeof(w) != 16 {
		t.Fatalf("winGUID is %d bytes", unsafe.Sizeof(w))
	}
	var mem [16]byte
	binary.LittleEndian.PutUint32(mem[0:], w.Data1)
	binary.LittleEndian.PutUint16(mem[4:], w.Data2)
	binary.LittleEndian.PutUint16(mem[6:], w.Data3)
	copy(mem[8:], w.Data4[:])
	wantMem := [16]byte{0x10, 0xb8, 0xa7, 0x6b, 0xad, 0x9d, 0xd1, 0x11, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	if mem != wantMem {
		t.Fatalf("memory layout % x, want % x", mem, wantMem)
	}
	if back := fromWinGUID(w); back != g {
		t.Fatalf("round trip: %v, want %v", back, g)
	}
	for range 100 {
		g, err := newGUID()
		if err != nil {
			t.Fatal(err)
		}
		if back := fromWinGUID(toWinGUID(g)); back != g {
			t.Fatalf("round trip of %v gave %v", g, back)
		}
	}
}

func TestLUIDHelpers(t *testing.T) {
	luid := uint64(ifTypePropVirtual)<<48 | uint64(0xABCDEF)<<24 | 0x123456
	if got := luidNetIndex(luid); got != 0xABCDEF {
		t.Errorf("luidNetIndex = %#x", got)
	}
	if got := luidIfType(luid); got != ifTypePropVirtual {
		t.Errorf("luidIfType = %d", got)
	}
}

func TestPlainPrefix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.1.2.3/24", "10.1.2.3/24"},
		{"fd00::1/64", "fd00::1/64"},
		{"::ffff:10.1.2.3/120", "10.1.2.3/24"},
		{"::ffff:0.0.0.0/96", "0.0.0.0/0"},
		{"::ffff:192.0.2.1/128", "192.0.2.1/32"},
	} {
		got, err := plainPrefix(netip.MustParsePrefix(tc.in))
		if err != nil || got != netip.MustParsePrefix(tc.want) {
			t.Errorf("plainPrefix(%s) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, p := range []netip.Prefix{{}, netip.MustParsePrefix("::ffff:0.0.0.0/80")} {
		if got, err := plainPrefix(p); err == nil {
			t.Errorf("plainPrefix(%v) = %v, want an error", p, got)
		}
	}
	if unspecifiedFor(netip.MustParseAddr("10.0.0.1")) != netip.IPv4Unspecified() ||
		unspecifiedFor(netip.MustParseAddr("fd00::1")) != netip.IPv6Unspecified() {
		t.Error("unspecifiedFor picked the wrong family")
	}
}

func TestFileTime(t *testing.T) {
	for _, tc := range []struct {
		ft   uint64
		want time.Time
	}{
		{0, time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)},
		{116444736000000000, time.Unix(0, 0).UTC()},
		// 2026-11-30 15:04:05.1234567 UTC, past the point where ft*100 overflows int64.
		{134405246451234567, time.Date(2026, 11, 30, 15, 4, 5, 123456700, time.UTC)},
	} {
		if got := fileTime(tc.ft); !got.Equal(tc.want) {
			t.Errorf("fileTime(%d) = %v, want %v", tc.ft, got, tc.want)
		}
	}
}

func TestWintunZipArch(t *testing.T) {
	for goarch, dir := range map[string]string{"386": "x86", "amd64": "amd64", "arm64": "arm64", "arm": "arm"} {
		if got := wintunZipArch(goarch); got != dir {
			t.Errorf("wintunZipArch(%s) = %s, want %s", goarch, got, dir)
		}
		msg := dllLoadError(`C:\app`, goarch, syscall.Errno(126)).Error()
		if !strings.Contains(msg, `bin\`+dir+`\wintun.dll`) {
			t.Errorf("%s: %q does not name bin\\%s", goarch, msg, dir)
		}
	}
}

// families is a fake of the IP interfaces of a new adapter.
type families struct {
	mu      sync.Mutex
	present map[uint16]bool
}

func (f *families) has(fam uint16) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.present[fam]
}

func (f *families) add(fam uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.present[fam] = true
}

func TestAwaitFamilies(t *testing.T) {
	want := []uint16{winAFInet, winAFInet6}
	never := func() <-chan time.Time { return nil }

	// Both present at once: no wait at all.
	f := &families{present: map[uint16]bool{winAFInet: true, winAFInet6: true}}
	if got := awaitFamilies(want, f.has, nil, nil, never); len(got) != 2 {
		t.Fatalf("both present: %v", got)
	}

	// They arrive one after the other, each announced by the callback.
	f = &families{present: map[uint16]bool{}}
	changed := make(chan struct{}, 1)
	signal := func() { // as the callback signals: never blocking
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	done := make(chan []uint16)
	go func() { done <- awaitFamilies(want, f.has, changed, nil, never) }()
	f.add(winAFInet6)
	signal()
	f.add(winAFInet)
	signal()
	if got := <-done; len(got) != 2 || got[0] != winAFInet || got[1] != winAFInet6 {
		t.Fatalf("after both arrived: %v", got)
	}

	// IPv6 never comes: the grace period, started by IPv4's arrival, ends the wait.
	f = &families{present: map[uint16]bool{}}
	changed = make(chan struct{}, 1)
	grace := make(chan time.Time)
	graceAsked := make(chan struct{})
	go func() {
		done <- awaitFamilies(want, f.has, changed, nil, func() <-chan time.Time {
			close(graceAsked)
			return grace
		})
	}()
	select {
	case <-graceAsked:
		t.Fatal("grace period started before any family was present")
	default:
	}
	f.add(winAFInet)
	signal()
	<-graceAsked
	grace <- time.Time{}
	if got := <-done; len(got) != 1 || got[0] != winAFInet {
		t.Fatalf("after the grace period: %v", got)
	}

	// Nothing comes: the deadline ends the wait with nothing.
	f = &families{present: map[uint16]bool{}}
	deadline := make(chan time.Time, 1)
	deadline <- time.Time{}
	if got := awaitFamilies(want, f.has, nil, deadline, never); len(got) != 0 {
		t.Fatalf("after the deadline: %v", got)
	}
	if familyName(winAFInet) != "IPv4" || familyName(winAFInet6) != "IPv6" {
		t.Error("familyName")
	}
}

func TestWithDriverCounters(t *testing.T) {
	st := Stats{ReceivedPackets: 7, SentPackets: 5, SendDiscardsInvalid: 1}
	got := withDriverCounters(st, driverCounters{inDiscards: 1, inErrors: 2, outDiscards: 3})
	want := st
	want.ReceiveDropsRingFull, want.SendErrors = 3, 3
	if got != want {
		t.Errorf("withDriverCounters = %+v, want %+v", got, want)
	}
}
