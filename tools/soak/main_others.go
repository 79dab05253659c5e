//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
)

// The soak test joins two network namespaces, which only Linux has; elsewhere the
// command builds, so that the module builds as a whole, and says so.
func main() {
	fmt.Fprintf(os.Stderr, "soak: needs Linux network namespaces; not available on %s\n", runtime.GOOS)
	os.Exit(1)
}
