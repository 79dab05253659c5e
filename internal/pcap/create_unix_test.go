//go:build unix

package pcap

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestCreateMode checks that a capture, which holds a tunnel's decrypted traffic, is
// readable by its owner only whatever the umask, and that Create never writes into a
// file or through a symbolic link that exists already (nor changes its mode).
func TestCreateMode(t *testing.T) {
	old := syscall.Umask(0) // the mode must not depend on the caller's umask
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "c.pcapng")
	w, err := Create(path, "wt0")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Fatalf("capture file: mode %v, want 0600", fi.Mode().Perm())
	}

	// An existing file, here readable by everyone: refused, left as it was.
	existing := filepath.Join(dir, "old.pcapng")
	if err := os.WriteFile(existing, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(existing, "wt0"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over an existing file: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(existing); !bytes.Equal(b, []byte("old")) {
		t.Errorf("existing file now holds %q", b)
	}
	if fi, err := os.Stat(existing); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("existing file: %v, %v; want it left at mode 0644", err, fi)
	}

	// A symbolic link, as another user could leave in /tmp: not followed.
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.pcapng")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(link, "wt0"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create through a symbolic link: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(target); !bytes.Equal(b, []byte("target")) {
		t.Errorf("the link's target now holds %q", b)
	}
	// A dangling link too: O_CREAT alone would create its target.
	dangling := filepath.Join(dir, "dangling.pcapng")
	if err := os.Symlink(filepath.Join(dir, "nothere"), dangling); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dangling, "wt0"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create through a dangling link: %v, want fs.ErrExist", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nothere")); err == nil {
		t.Error("Create made the dangling link's target")
	}
}
