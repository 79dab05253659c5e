// Package pcap writes the packets that cross a wintun session to a pcapng file, which
// tcpdump and Wireshark open. It implements wintun.Capture with gopacket's pcapgo, and
// lives apart from package wintun so that the library itself does not depend on
// gopacket.
package pcap

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"go.wintun.dev/wintun"
)

// Writer is a wintun.Capture that records every packet in a pcapng section with one
// interface of link type raw IP (LINKTYPE_RAW, 101: each packet starts with its IPv4
// or IPv6 header, as on a wintun adapter), with nanosecond timestamps.
//
// Its methods are safe for concurrent use: a session calls CapturePacket from its
// reading and writing goroutines at once. Packets are buffered; Close flushes them.
type Writer struct {
	mu      sync.Mutex
	ng      *pcapgo.NgWriter
	file    io.Closer // nil when the caller owns the underlying writer
	err     error     // the first write error; later packets are not written
	packets [2]uint64 // by wintun.Direction
	closed  bool
}

// NewWriter starts a pcapng stream on w for packets of the adapter named ifName. The
// caller closes w after Close.
func NewWriter(w io.Writer, ifName string) (*Writer, error) {
	intf := pcapgo.NgInterface{
		Name:                ifName,
		Description:         "wintun adapter " + ifName,
		OS:                  runtime.GOOS,
		LinkType:            layers.LinkTypeRaw,
		SnapLength:          0, // whole packets
		TimestampResolution: 9, // nanoseconds, as time.Time
	}
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware:    runtime.GOARCH,
		OS:          runtime.GOOS,
		Application: "wintun (go.wintun.dev/wintun)",
	}}
	ng, err := pcapgo.NewNgWriterInterface(w, intf, opts)
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	// The section and interface headers are written at once, so that even a capture
	// that ends without a packet is a valid file.
	if err := ng.Flush(); err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	return &Writer{ng: ng}, nil
}

// Create creates the file path, mode 0600, and starts a pcapng capture in it for the
// adapter named ifName. Close flushes and closes the file.
//
// A capture holds every packet that crosses the session, for a VPN its decrypted
// traffic, so only the file's owner may read it. Create fails, with an error matching
// fs.ErrExist, when path exists, even as a symbolic link: it never truncates or writes
// into a file that someone else may have made or still hold open, nor follows a link
// that another user left in a shared directory such as /tmp. Remove an old capture
// first, or choose another name.
func Create(path, ifName string) (*Writer, error) {
	// O_EXCL with O_CREATE fails on any existing path, a dangling link included.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("pcap: %w: remove it or choose another name (a capture never overwrites a file)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	w, err := NewWriter(f, ifName)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.file = f
	return w, nil
}

// CapturePacket records one packet. It never blocks on anything but the file: a
// write error is kept for Close to report, and the packets after it are dropped
// rather than slowing or stopping the session.
func (w *Writer) CapturePacket(dir wintun.Direction, timestamp time.Time, packet []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.err != nil {
		return
	}
	ci := gopacket.CaptureInfo{Timestamp: timestamp, CaptureLength: len(packet), Length: len(packet)}
	if err := w.ng.WritePacket(ci, packet); err != nil {
		w.err = err
		return
	}
	if dir == wintun.Received || dir == wintun.Sent {
		w.packets[dir]++
	}
}

// Packets returns how many packets were recorded in each direction.
func (w *Writer) Packets() (received, sent uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.packets[wintun.Received], w.packets[wintun.Sent]
}

// Close flushes the buffered packets and closes the file Create opened. It reports
// the first error of any write, so a capture that lost packets does not pass for a
// complete one. Packets captured after Close are ignored; Close is idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	w.closed = true
	err := w.err
	if ferr := w.ng.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	if w.file != nil {
		if cerr := w.file.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		w.err = fmt.Errorf("pcap: %w", err)
	}
	return w.err
}

var _ wintun.Capture = (*Writer)(nil)
