package wintun_test

import (
	"fmt"

	"go.wintun.dev/wintun"
)

// CheckName applies the kernel's rules for interface names, and refuses '%' (which
// would let the kernel pick the name), before any system call: a program can check
// its input early.
func ExampleCheckName() {
	for _, name := range []string{"wg0", "tun-office.1", "", "a-name-too-long-for-linux", "eth 0", "vpn/1", "tun%d"} {
		if err := wintun.CheckName(name); err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%q is fine\n", name)
	}
	// Output:
	// "wg0" is fine
	// "tun-office.1" is fine
	// wintun: empty adapter name
	// wintun: adapter name "a-name-too-long-for-linux" is 25 bytes long; Linux allows at most 15
	// wintun: adapter name "eth 0" has a character the kernel refuses (' '); use letters, digits, '-', '_' or '.'
	// wintun: adapter name "vpn/1" has a character the kernel refuses ('/'); use letters, digits, '-', '_' or '.'
	// wintun: adapter name "tun%d" has a character the kernel refuses ('%'); use letters, digits, '-', '_' or '.'
}
