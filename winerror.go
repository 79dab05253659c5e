package wintun

// Windows error handling, kept free of Windows-only imports so that the mapping is
// tested on Linux too: the numbers are those of winerror.h, and both platforms
// represent them as syscall.Errno.

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// Windows error numbers (winerror.h) that the Windows side of the package maps.
const (
	winErrorFileNotFound        = 2
	winErrorPathNotFound        = 3
	winErrorAccessDenied        = 5
	winErrorInvalidData         = 13
	winErrorHandleEOF           = 38
	winErrorFileExists          = 80
	winErrorBufferOverflow      = 111
	winErrorModNotFound         = 126
	winErrorProcNotFound        = 127
	winErrorAlreadyExists       = 183
	winErrorBadExeFormat        = 193
	winErrorNoMoreItems         = 259
	winErrorNotFound            = 1168
	winErrorAlreadyInitialized  = 1247
	winErrorObjectAlreadyExists = 5010
)

// ringError maps the errors of the four ring calls (ReceivePacket,
// AllocateSendPacket) to the package's sentinels, so that callers compare them with ==
// exactly as on Linux. It reports false for any other error.
func ringError(err error) (error, bool) {
	var en syscall.Errno
	if !errors.As(err, &en) {
		return nil, false
	}
	switch uint32(en) {
	case winErrorNoMoreItems:
		return ErrNoMoreItems, true
	case winErrorBufferOverflow:
		return ErrBufferOverflow, true
	case winErrorInvalidData:
		return ErrInvalidData, true
	case winErrorHandleEOF:
		return ErrAdapterGone, true
	}
	return nil, false
}

// mapRingError is mapWinError for the ring calls of a session, whose conditions
// (empty, full, corrupt, end of file) become the sentinels themselves.
func mapRingError(op string, err error) error {
	if s, ok := ringError(err); ok {
		return s
	}
	return mapWinError(op, err)
}

// mapWinError turns an error from wintun.dll or the IP helper API into this package's
// terms: the common conditions wrap fs.ErrNotExist, fs.ErrExist or fs.ErrPermission
// next to the original error, so that both errors.Is(err, fs.ErrExist) and
// errors.Is(err, windows.ERROR_...) hold. op says what was being done, for the
// message. The ring sentinels are mapRingError's: the same error numbers mean
// something else from other calls (ERROR_BUFFER_OVERFLOW for a name too long).
func mapWinError(op string, err error) error {
	if err == nil {
		return nil
	}
	var en syscall.Errno
	if !errors.As(err, &en) {
		return fmt.Errorf("wintun: %s: %w", op, err)
	}
	switch uint32(en) {
	case 0:
		// The binding returns the thread's last error, which a failing call may not
		// have set.
		return fmt.Errorf("wintun: %s: failed without an error code", op)
	case winErrorFileNotFound, winErrorPathNotFound, winErrorNotFound:
		return fmt.Errorf("wintun: %s: %w (%w)", op, fs.ErrNotExist, en)
	case winErrorAlreadyExists, winErrorFileExists, winErrorObjectAlreadyExists:
		return fmt.Errorf("wintun: %s: %w (%w)", op, fs.ErrExist, en)
	case winErrorAccessDenied:
		return fmt.Errorf("wintun: %s: %w (%w): run as Administrator", op, fs.ErrPermission, en)
	case winErrorAlreadyInitialized:
		return fmt.Errorf("wintun: %s: %w (%w): Wintun allows one session per adapter at a time", op, fs.ErrExist, en)
	}
	return fmt.Errorf("wintun: %s: %w", op, en)
}

// dllLoadError explains why wintun.dll could not be used and where to put it. dir is
// the directory of the executable and arch its GOARCH. A missing DLL satisfies
// errors.Is(err, fs.ErrNotExist).
func dllLoadError(dir, arch string, err error) error {
	where := fmt.Sprintf("put wintun.dll for %s (from https://www.wintun.net/, bin\\%s\\wintun.dll in the zip) in %s, next to the executable", arch, wintunZipArch(arch), dir)
	var en syscall.Errno
	if errors.As(err, &en) {
		switch uint32(en) {
		case winErrorModNotFound, winErrorFileNotFound:
			return fmt.Errorf("wintun: wintun.dll not found: %s: %w (%w)", where, fs.ErrNotExist, en)
		case winErrorBadExeFormat:
			return fmt.Errorf("wintun: wintun.dll is for another architecture: %s: %w", where, en)
		case winErrorProcNotFound:
			return fmt.Errorf("wintun: wintun.dll is too old (Wintun 0.14 or later needed): %s: %w", where, en)
		}
	}
	return fmt.Errorf("wintun: cannot load wintun.dll: %s: %w", where, err)
}
