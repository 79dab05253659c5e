//go:build !linux

package wintun

import (
	"errors"
	"os"
	"testing"
)

// TestAdoptSessionUnsupported checks that AdoptSession reports errors.ErrUnsupported
// and leaves the file open, as its error path promises.
func TestAdoptSessionUnsupported(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "adopt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := AdoptSession(f, RingCapacityMin)
	if s != nil || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("AdoptSession: got %v, %v; want nil and an error satisfying errors.Is(err, errors.ErrUnsupported)", s, err)
	}
	if _, err := f.Stat(); err != nil {
		t.Errorf("AdoptSession closed the file on error: %v", err)
	}
}
