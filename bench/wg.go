package main

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/wgtun"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// The WireGuard rows: two wireguard-go peers, one in each namespace, joined by a veth
// pair; iperf3 runs through the tunnel. Each peer is a process started inside its
// namespace (ip netns exec), so all its sockets are there.

const (
	wgDev      = "wtwg"
	wgPort     = 51820
	underlayA  = "10.251.0.1"
	underlayB  = "10.251.0.2"
	tunnelA    = "10.252.0.1"
	tunnelB    = "10.252.0.2"
	wgRingSize = 0x800000
)

func newKey() (priv, pub string) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return hex.EncodeToString(k.Bytes()), hex.EncodeToString(k.PublicKey().Bytes())
}

// wgPeerMain runs one peer: impl is "wintun" or "wireguard-go".
func wgPeerMain(impl, priv, peerPub, endpoint, allowed string) error {
	var dev tun.Device
	switch impl {
	case "wintun":
		a, err := wintun.CreateAdapter(wgDev, "WireGuard", nil, wintun.WithMTU(1420))
		if err != nil {
			return err
		}
		defer a.Close()
		d, err := wgtun.New(a, wgtun.WithRingCapacity(wgRingSize))
		if err != nil {
			return err
		}
		dev = d
	case "wireguard-go":
		d, err := tun.CreateTUN(wgDev, 1420)
		if err != nil {
			return err
		}
		dev = d
	default:
		return fmt.Errorf("unknown WireGuard tun %q", impl)
	}
	wg := device.NewDevice(dev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
	defer wg.Close()
	cfg := fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nendpoint=%s:%d\nallowed_ip=%s\npersistent_keepalive_interval=0\n",
		priv, wgPort, peerPub, endpoint, wgPort, allowed)
	if err := wg.IpcSet(cfg); err != nil {
		return err
	}
	if err := wg.Up(); err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	stopProfile, err := startProfile()
	if err != nil {
		return err
	}
	fmt.Println("ready")
	<-sig
	stopProfile()
	fmt.Println(`{"packets":0,"drops":0}`)
	return nil
}
