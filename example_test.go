package wintun_test

import (
	"errors"
	"fmt"
	"io"

	"go.wintun.dev/wintun"
)

// A GUID reads in either case, with or without the braces Windows puts around it, and
// prints in lower case without them. Its bytes are in the order they are written.
func ExampleParseGUID() {
	g, err := wintun.ParseGUID("{6BA7B810-9DAD-11D1-80B4-00C04FD430C8}")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(g)
	fmt.Printf("first byte %#x, last byte %#x\n", g[0], g[15])
	fmt.Println(g == wintun.GUID{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
		0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8})

	_, err = wintun.ParseGUID("6ba7b810-9dad-11d1-80b4")
	fmt.Println(err)
	// Output:
	// 6ba7b810-9dad-11d1-80b4-00c04fd430c8
	// first byte 0x6b, last byte 0xc8
	// true
	// wintun: invalid GUID "6ba7b810-9dad-11d1-80b4": want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx
}

// A session's calls return four kinds of error. ErrNoMoreItems (receive ring empty:
// wait on ReadWaitEvent) and ErrBufferOverflow (send ring full: drop or retry) are
// momentary. The end of a session, by End (ErrSessionEnded) or because the adapter went
// away (ErrAdapterGone), satisfies errors.Is(err, io.EOF), like Wintun's
// ERROR_HANDLE_EOF; so does any error that wraps them. ErrInvalidData, a corrupt ring,
// ends the session too but is no io.EOF.
func Example_errors() {
	for _, err := range []error{
		wintun.ErrNoMoreItems,
		wintun.ErrBufferOverflow,
		wintun.ErrSessionEnded,
		fmt.Errorf("forwarding: %w", wintun.ErrAdapterGone),
		wintun.ErrInvalidData,
	} {
		fmt.Printf("%-50q io.EOF: %-5v adapter gone: %v\n",
			err.Error(), errors.Is(err, io.EOF), errors.Is(err, wintun.ErrAdapterGone))
	}
	// Output:
	// "wintun: no more items"                            io.EOF: false adapter gone: false
	// "wintun: buffer overflow"                          io.EOF: false adapter gone: false
	// "wintun: session ended"                            io.EOF: true  adapter gone: false
	// "forwarding: wintun: adapter is going away"        io.EOF: true  adapter gone: true
	// "wintun: invalid data"                             io.EOF: false adapter gone: false
}
