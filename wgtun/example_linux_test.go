package wgtun_test

import (
	"log"
	"net/netip"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/wgtun"
)

// A wireguard-go device on a wintun adapter. The keys are placeholders: the UAPI
// takes them in hex (examples/wireguard converts the wg tool's base64).
func ExampleNew() {
	adapter, err := wintun.CreateAdapter("wg0", "WireGuard", nil, wintun.WithMTU(device.DefaultMTU))
	if err != nil {
		log.Fatal(err)
	}
	defer adapter.Close() // after dev.Close: removes the interface
	if err := adapter.AddAddress(netip.MustParsePrefix("10.100.0.1/24")); err != nil {
		log.Fatal(err)
	}
	tunDev, err := wgtun.New(adapter)
	if err != nil {
		log.Fatal(err)
	}
	dev := device.NewDevice(tunDev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelError, ""))
	defer dev.Close() // closes tunDev and ends its session
	err = dev.IpcSet("private_key=<64 hex digits>\nlisten_port=51820\n" +
		"public_key=<64 hex digits>\nallowed_ip=10.100.0.2/32\n")
	if err != nil {
		log.Fatal(err)
	}
	dev.Up()
	<-dev.Wait() // until the device closes
}
