package main

import (
	"fmt"
	"runtime"

	"go.wintun.dev/wintun"
)

func printVersion() error {
	fmt.Printf("wintun %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	v, err := wintun.RunningVersion()
	if err != nil {
		fmt.Printf("tun driver: not available: %v\n", err)
		return nil
	}
	fmt.Printf("tun driver: %d.%d\n", v>>16, v&0xffff)
	return nil
}
