package wintun

// Loading wintun.dll. The official binding loads it lazily and panics on the first
// call if the DLL or one of its exports is missing; this file loads it first, with the
// same search path, so that a missing or wrong DLL is an error, never a panic.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/windows"
	dll "golang.zx2c4.com/wintun"
)

// wintunExports are the DLL's functions the binding calls. An older or foreign DLL
// lacking one would make the binding panic, so all are checked at load time.
var wintunExports = []string{
	"WintunCreateAdapter", "WintunOpenAdapter", "WintunCloseAdapter", "WintunDeleteDriver",
	"WintunGetAdapterLUID", "WintunGetRunningDriverVersion", "WintunSetLogger",
	"WintunStartSession", "WintunEndSession", "WintunGetReadWaitEvent",
	"WintunReceivePacket", "WintunReleaseReceivePacket",
	"WintunAllocateSendPacket", "WintunSendPacket",
}

var dllLoad struct {
	sync.Mutex
	done bool
}

// loadDLL makes sure wintun.dll is loaded and complete before the binding is used. A
// failure is not remembered, so that a program may ask its user to put the DLL in
// place and try again.
func loadDLL() error {
	dllLoad.Lock()
	defer dllLoad.Unlock()
	if dllLoad.done {
		return nil
	}
	if err := probeDLL(); err != nil {
		return err
	}
	dllLoad.done = true
	return nil
}

func probeDLL() error {
	dir := "the executable's directory"
	if exe, err := os.Executable(); err == nil {
		dir = filepath.Dir(exe)
	}
	// The binding's flags: the executable's directory, then System32, never the
	// current directory or PATH (DLL planting).
	h, err := windows.LoadLibraryEx("wintun.dll", 0,
		windows.LOAD_LIBRARY_SEARCH_APPLICATION_DIR|windows.LOAD_LIBRARY_SEARCH_SYSTEM32)
	if err != nil {
		return dllLoadError(dir, runtime.GOARCH, err)
	}
	for _, name := range wintunExports {
		if _, err := windows.GetProcAddress(h, name); err != nil {
			windows.FreeLibrary(h)
			return dllLoadError(dir, runtime.GOARCH, err)
		}
	}
	// h stays loaded for the life of the process (the binding holds the same module).
	// Make the binding load it now, which installs its logger (to the standard log
	// package), then replace that logger with ours, which goes to SetLogger's.
	dll.Version()
	if err := installDLLLogger(h); err != nil {
		logWarn("wintun: wintun.dll messages go to the standard logger", "err", err)
	}
	return nil
}

// guard runs a call into the binding and turns a panic into an error: loadDLL makes
// panics impossible in principle, and this keeps a surprise from crashing the
// program. The hot session calls do not use it: once the DLL is loaded, the binding
// cannot panic there.
func guard(op string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("wintun: %s: wintun.dll: %v", op, r)
		}
	}()
	return f()
}

// dllMessage passes one of the DLL's messages (level 0 info, 1 warning, 2 error) to
// the logger of SetLogger. The DLL calls it from any thread.
func dllMessage(level uintptr, timestamp uint64, msg *uint16) uintptr {
	l := logger.Load()
	if l == nil {
		return 0
	}
	text := "wintun.dll: " + windows.UTF16PtrToString(msg)
	at := fileTime(timestamp)
	switch level {
	case 0:
		l.Info(text, "dll_time", at)
	case 1:
		l.Warn(text, "dll_time", at)
	default:
		l.Error(text, "dll_time", at)
	}
	return 0
}

// installDLLLogger registers dllMessage with WintunSetLogger. The callback's 64-bit
// timestamp is one argument on 64-bit systems and two 32-bit halves on 32-bit ones
// (with an alignment slot first on arm).
func installDLLLogger(h windows.Handle) error {
	proc, err := windows.GetProcAddress(h, "WintunSetLogger")
	if err != nil {
		return err
	}
	var cb uintptr
	switch runtime.GOARCH {
	case "amd64", "arm64":
		cb = windows.NewCallback(dllMessage)
	case "386":
		cb = windows.NewCallback(func(level, lo, hi uintptr, msg *uint16) uintptr {
			return dllMessage(level, uint64(hi)<<32|uint64(lo), msg)
		})
	case "arm":
		cb = windows.NewCallback(func(level, _, lo, hi uintptr, msg *uint16) uintptr {
			return dllMessage(level, uint64(hi)<<32|uint64(lo), msg)
		})
	default:
		return fmt.Errorf("no logger callback for %s", runtime.GOARCH)
	}
	syscall.SyscallN(proc, cb)
	return nil
}
