//go:build !linux

package wintun

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// AdoptSession starts a session on a tun file descriptor that the program did not open
// but was handed (by Android's VpnService, a privileged parent, systemd's
// file-descriptor store). Linux only: elsewhere it returns an error that satisfies
// errors.Is(err, errors.ErrUnsupported) and leaves f open and the caller's.
func AdoptSession(f *os.File, capacity uint32, opts ...SessionOption) (*Session, error) {
	return nil, fmt.Errorf("wintun: adopt session: %w on %s (tun file descriptors are Linux's)", errors.ErrUnsupported, runtime.GOOS)
}
