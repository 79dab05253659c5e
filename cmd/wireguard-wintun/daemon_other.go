//go:build !linux

package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
)

// daemon is not available here: wireguard-go's UAPI socket and wg-quick's use of a
// userspace implementation are those of Linux.
func daemon(string, bool, io.Writer, io.Writer) error {
	return fmt.Errorf("%w on %s", errors.ErrUnsupported, runtime.GOOS)
}
