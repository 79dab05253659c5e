package wintun_test

// Tests of the Windows side on a real Wintun adapter. They need wintun.dll next to the
// test binary and Administrator rights, and skip otherwise (fail with
// WINTUN_REQUIRE_PRIVILEGED=1). Until someone runs them on Windows they are only
// compiled (see the README).

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
}
