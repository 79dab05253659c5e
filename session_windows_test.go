package wintun_test

// Tests of the Windows side on a real Wintun adapter. They need wintun.dll next to the
// test binary and Administrator rights, and skip otherwise (fail with
// WINTUN_REQUIRE_PRIVILEGED=1). Until someone runs them on Windows they are only
// compiled (see docs/windows.md).

import (
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"golang.org/x/sys/windows"
)

func requireWintun(t *testing.T) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("WINTUN_REQUIRE_PRIVILEGED") == "1" {
		skip = t.Fatalf
	}
	if !windows.GetCurrentProcessToken().IsElevated() {
		skip("needs Administrator rights")
	}
	// RunningVersion's fs.ErrNotExist does not tell a missing DLL from a DLL with no
	// driver loaded yet (which CreateAdapter then loads), so look for the DLL itself,
	// where the package loads it from.
	h, err := windows.LoadLibraryEx("wintun.dll", 0,
		windows.LOAD_LIBRARY_SEARCH_APPLICATION_DIR|windows.LOAD_LIBRARY_SEARCH_SYSTEM32)
	if err != nil {
		skip("wintun.dll is not next to the test binary: %v", err)
	}
	windows.FreeLibrary(h)
	if _, err := wintun.RunningVersion(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		skip("wintun.dll not usable: %v", err)
	}
}

func TestWindowsAdapterAndSession(t *testing.T) {
	requireWintun(t)
	guid := wintun.GUID{0x77, 0x69, 0x6e, 0x74, 0x75, 0x6e, 0x40, 0x00, 0x80, 1, 2, 3, 4, 5, 6, 7}
	a, err := wintun.CreateAdapter("wintun-go test", "Wintun Go Test", &guid, wintun.WithMTU(1400))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.GUID() != guid || a.Index() == 0 || a.LUID()>>48 != 53 {
		t.Errorf("GUID %v, index %d, LUID %#x", a.GUID(), a.Index(), a.LUID())
	}
	if _, err := wintun.CreateAdapter("wintun-go test", "Wintun Go Test", nil); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second CreateAdapter: %v, want fs.ErrExist", err)
	}
	if mtu, err := a.MTU(); err != nil || mtu != 1400 {
		t.Errorf("MTU = %d, %v; want 1400", mtu, err)
	}
	p := netip.MustParsePrefix("10.99.7.7/24")
	if err := a.AddAddress(p); err != nil {
		t.Fatal(err)
	}
	if err := a.AddAddress(p); !errors.Is(err, fs.ErrExist) {
		t.Errorf("AddAddress twice: %v, want fs.ErrExist", err)
	}
	if err := a.AddRoute(netip.MustParsePrefix("10.98.0.0/16")); err != nil {
		t.Error(err)
	}
	o, err := wintun.OpenAdapter("wintun-go test")
	if err != nil {
		t.Fatal(err)
	}
	if o.GUID() != guid || o.LUID() != a.LUID() {
		t.Errorf("opened: GUID %v LUID %#x", o.GUID(), o.LUID())
	}
	o.Close()

	s, err := a.StartSession(wintun.RingCapacityMin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.StartSession(wintun.RingCapacityMin); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second session: %v, want fs.ErrExist", err)
	}
	s.ReleaseReceivePacket(nil) // ignored, no panic
	s.SendPacket([]byte{})      // ignored, no panic
	if _, err := s.AllocateSendPacket(0); err == nil {
		t.Error("AllocateSendPacket(0) accepted")
	}
	buf, err := s.AllocateSendPacket(28)
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 99, 7, 8, 10, 99, 7, 7})
	s.SendPacket(buf)
	if st := a.Stats(); st.SentPackets != 1 || st.SentBytes != 28 {
		t.Errorf("stats %+v", st)
	}
	// The batch calls, loops over the single ones on Windows.
	bufs := make([][]byte, 2)
	if n, err := s.AllocateSendPackets([]int{20, 40}, bufs); n != 2 || err != nil {
		t.Fatalf("AllocateSendPackets = %d, %v", n, err)
	}
	bufs[0][0], bufs[1][0] = 0x45, 0x60
	s.SendPackets(bufs)
	if st := a.Stats(); st.SentPackets != 3 || st.SentBytes != 88 {
		t.Errorf("stats after the batch %+v", st)
	}
	if n, err := s.ReceivePackets(make([][]byte, 4)); err != nil && err != wintun.ErrNoMoreItems {
		t.Errorf("ReceivePackets = %d, %v", n, err)
	}
	s.End()
	s.End() // harmless
	if _, err := s.ReceivePacket(); err != wintun.ErrSessionEnded || !errors.Is(err, io.EOF) {
		t.Errorf("ReceivePacket after End: %v", err)
	}
	if _, err := s.AllocateSendPacket(20); err != wintun.ErrSessionEnded {
		t.Errorf("AllocateSendPacket after End: %v", err)
	}
	select {
	case _, ok := <-s.ReadWaitEvent():
		if ok {
			// A token may precede the close.
			if _, ok = <-s.ReadWaitEvent(); ok {
				t.Error("ReadWaitEvent not closed after End")
			}
		}
	case <-time.After(5 * time.Second):
		t.Error("ReadWaitEvent not closed after End")
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := wintun.OpenAdapter("wintun-go test"); err == nil {
		t.Error("adapter still there after its creator's Close")
	}
}

func TestWindowsRefusedOptions(t *testing.T) {
	for _, o := range []wintun.Option{wintun.WithPersist(), wintun.WithOwner(1), wintun.WithGroup(1)} {
		if _, err := wintun.CreateAdapter("wintun-go refused", "Test", nil, o); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("CreateAdapter: %v, want errors.ErrUnsupported", err)
		}
	}
	if _, err := wintun.CreateAdapter("bad:name", "Test", nil); err == nil {
		t.Error("CreateAdapter accepted a name with ':'")
	}
	// A mapped prefix shorter than /96 is refused before any system call.
	var a wintun.Adapter
	if err := a.AddAddress(netip.MustParsePrefix("::ffff:0.0.0.0/80")); err == nil {
		t.Error("AddAddress accepted ::ffff:0.0.0.0/80")
	}
}
