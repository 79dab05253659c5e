package pcap

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/packet"
)

var (
	addrA = netip.MustParseAddr("10.1.2.3")
	addrB = netip.MustParseAddr("10.1.2.4")
	addr6 = netip.MustParseAddr("fd00::1")
	addr7 = netip.MustParseAddr("fd00::2")
)

// writeSample captures n echo requests each way from several goroutines at once, as
// a session's two goroutines do, plus one IPv6 packet.
func writeSample(t *testing.T, w *Writer, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for _, dir := range []wintun.Direction{wintun.Received, wintun.Sent} {
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				src, dst := addrA, addrB
				if dir == wintun.Sent {
					src, dst = dst, src
				}
				for i := 0; i < n; i++ {
					p := packet.Echo(src, dst, packet.EchoRequest4, uint16(g), uint16(i), []byte("capture"))
					w.CapturePacket(dir, time.Now(), p)
				}
			}()
		}
	}
	wg.Wait()
	w.CapturePacket(wintun.Received, time.Now(), packet.Echo(addr6, addr7, packet.EchoRequest6, 1, 1, []byte("v6")))
}

func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.pcapng")
	start := time.Now()
	w, err := Create(path, "wt0")
	if err != nil {
		t.Fatal(err)
	}
	writeSample(t, w, 100)
	if rx, tx := w.Packets(); rx != 401 || tx != 400 {
		t.Errorf("Packets() = %d, %d; want 401, 400", rx, tx)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.CapturePacket(wintun.Sent, time.Now(), []byte{0x45}) // after Close: ignored, no panic
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Errorf("link type %v, want raw IP", r.LinkType())
	}
	intf, err := r.Interface(0)
	if err != nil || intf.Name != "wt0" {
		t.Errorf("interface 0 = %+v, %v; want name wt0", intf, err)
	}
	counts := map[netip.Addr]int{}
	v6 := 0
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ci.Timestamp.Before(start.Add(-time.Millisecond)) || ci.Timestamp.After(time.Now()) {
			t.Errorf("timestamp %v out of range", ci.Timestamp)
		}
		in, err := packet.Parse(data)
		if err != nil {
			t.Fatalf("packet %x: %v", data, err)
		}
		if in.Src.Is6() {
			v6++
			continue
		}
		counts[in.Src]++
	}
	if counts[addrA] != 400 || counts[addrB] != 400 || v6 != 1 {
		t.Errorf("read back %v and %d IPv6 packets; want 400 from each side and 1", counts, v6)
	}
}

func TestEmptyCaptureIsValid(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "empty")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(&buf, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Fatalf("ReadPacketData = %v, want io.EOF", err)
	}
}

// failWriter accepts the headers and fails afterwards.
type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n > 0 {
		return 0, errors.New("disk full")
	}
	f.n++
	return len(p), nil
}

func TestWriteErrorReported(t *testing.T) {
	w, err := NewWriter(&failWriter{}, "x")
	if err != nil {
		t.Fatal(err)
	}
	big := packet.IP(addrA, addrB, packet.ProtoUDP, make([]byte, 8000)) // larger than the buffer
	w.CapturePacket(wintun.Received, time.Now(), big)
	w.CapturePacket(wintun.Received, time.Now(), big)
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Close = %v, want the write error", err)
	}
}

// TestTcpdumpReads checks that tcpdump, the reference reader, opens the file and
// decodes both directions. It skips only when tcpdump is not installed.
func TestTcpdumpReads(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed (apt-get install tcpdump)")
	}
	path := filepath.Join(t.TempDir(), "c.pcapng")
	w, err := Create(path, "wt0")
	if err != nil {
		t.Fatal(err)
	}
	writeSample(t, w, 3)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(tcpdump, "-n", "-r", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s%s", err, out, stderr.Bytes())
	}
	o := string(out)
	for _, want := range []string{"10.1.2.3 > 10.1.2.4: ICMP echo request", "10.1.2.4 > 10.1.2.3: ICMP echo request",
		"fd00::1 > fd00::2: ICMP6, echo request"} {
		if !strings.Contains(o, want) {
			t.Errorf("tcpdump output lacks %q:\n%s", want, o)
		}
	}
	if n := strings.Count(o, "\n"); n != 25 {
		t.Errorf("tcpdump printed %d lines, want 25:\n%s", n, o)
	}
}
