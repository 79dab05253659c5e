package main

import (
	"errors"

	"golang.org/x/sys/windows"
)

// hasCapNetAdmin reports whether the process may create adapters: on Windows, whether
// it runs elevated (as Administrator), which wintun.dll requires.
func hasCapNetAdmin() bool {
	return windows.GetCurrentProcessToken().IsElevated()
}

// reexecInNamespace is where the Linux demo moves to a private network namespace.
// Windows has no such namespaces, so the demo needs Administrator rights instead.
func reexecInNamespace(bool) error {
	if hasCapNetAdmin() {
		return errors.New("--netns exists only on Linux: on Windows the demo's adapter is visible to the whole system")
	}
	return errors.New("the demo needs Administrator rights on Windows: run it from an elevated prompt " +
		"(Run as administrator), with wintun.dll from https://www.wintun.net/ next to wintun.exe")
}
