package main

import (
	"fmt"
	"io"
	"runtime"

	"go.wintun.dev/wintun"
)

const versionUsage = `usage: wintun version [--json]

Prints this program's version and the kernel tun driver's.

`

func cmdVersion(out io.Writer, args []string) error {
	c := newCommand("version", versionUsage, out)
	asJSON := c.Bool("json", false, "print JSON")
	if _, err := c.parseArgs(args, 0); err != nil {
		return err
	}
	v := struct {
		Version string `json:"version"`
		Go      string `json:"go"`
		OS      string `json:"os"`
		Arch    string `json:"arch"`
		Driver  string `json:"tun_driver,omitempty"`
		Error   string `json:"tun_driver_error,omitempty"`
	}{Version: version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if d, err := wintun.RunningVersion(); err != nil {
		v.Error = err.Error()
	} else {
		v.Driver = fmt.Sprintf("%d.%d", d>>16, d&0xffff)
	}
	if *asJSON {
		return writeJSON(out, v)
	}
	fmt.Fprintf(out, "wintun %s (%s, %s/%s)\n", v.Version, v.Go, v.OS, v.Arch)
	if v.Error != "" {
		fmt.Fprintf(out, "tun driver: not available: %s\n", v.Error)
	} else {
		fmt.Fprintf(out, "tun driver: %s\n", v.Driver)
	}
	return nil
}
