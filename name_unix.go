//go:build !windows

package wintun

import (
	"errors"
	"fmt"
)

// checkName validates an interface name before any system call, with the kernel's own
// rules (dev_valid_name) plus a refusal of '%', which would ask the kernel to pick
// the name.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("wintun: empty adapter name")
	case len(name) > 15:
		return fmt.Errorf("wintun: adapter name %q is %d bytes long; Linux allows at most 15", name, len(name))
	case name == "." || name == "..":
		return fmt.Errorf("wintun: invalid adapter name %q", name)
	}
	for _, c := range []byte(name) {
		if c == '/' || c == ':' || c == '%' || c <= ' ' || c == 0x7f {
			return fmt.Errorf("wintun: adapter name %q has a character the kernel refuses (%q); use letters, digits, '-', '_' or '.'", name, c)
		}
	}
	return nil
}
