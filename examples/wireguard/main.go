// Command wireguard runs a WireGuard interface whose tun device is a wintun adapter:
// wireguard-go does the cryptography and the UDP, this library moves the packets
// between the kernel and wireguard-go through its rings.
//
// Make a key pair for each side, then run one side per machine (as root):
//
//	go run ./examples/wireguard -genkey
//	go run ./examples/wireguard -key PRIVATE -address 10.100.0.1/24 -port 51820 \
//		-peer PEER_PUBLIC -endpoint 192.0.2.2:51820 -allowed-ips 10.100.0.2/32
//
// Keys are in base64, as the wg tool prints them. Ctrl+C removes the interface.
package main

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/wgtun"
)

func main() {
	var (
		genkey   = flag.Bool("genkey", false, "print a new private key and its public key, then exit")
		name     = flag.String("name", "wg0", "interface name")
		key      = flag.String("key", "", "this side's private key (base64)")
		address  = flag.String("address", "10.100.0.1/24", "this side's tunnel address")
		port     = flag.Int("port", 51820, "UDP port to listen on")
		peer     = flag.String("peer", "", "the peer's public key (base64)")
		endpoint = flag.String("endpoint", "", "the peer's address and UDP port (optional if the peer connects to us)")
		allowed  = flag.String("allowed-ips", "10.100.0.2/32", "comma-separated prefixes routed to the peer")
		verbose  = flag.Bool("v", false, "log wireguard-go's messages")
	)
	flag.Parse()
	if *genkey {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("private:", base64.StdEncoding.EncodeToString(k.Bytes()))
		fmt.Println("public: ", base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()))
		return
	}

	// wireguard-go is configured through its UAPI text: keys in hex, one key=value
	// per line; "public_key" starts the peer's section.
	uapi := []string{"private_key=" + hexKey(*key), fmt.Sprintf("listen_port=%d", *port),
		"public_key=" + hexKey(*peer)}
	if *endpoint != "" {
		uapi = append(uapi, "endpoint="+*endpoint)
	}
	for _, p := range strings.Split(*allowed, ",") {
		uapi = append(uapi, "allowed_ip="+strings.TrimSpace(p))
	}

	// 1. The adapter: a layer 3 interface with the tunnel address. WireGuard's
	//    overhead leaves 1420 bytes for the packets inside.
	adapter, err := wintun.CreateAdapter(*name, "WireGuard", nil, wintun.WithMTU(device.DefaultMTU))
	if err != nil {
		log.Fatal(err)
	}
	defer adapter.Close() // removes the interface
	if err := adapter.AddAddress(netip.MustParsePrefix(*address)); err != nil {
		log.Fatal(err)
	}

	// 2. wgtun makes it a tun.Device: it starts a session, whose rings carry the packets.
	tunDev, err := wgtun.New(adapter)
	if err != nil {
		log.Fatal(err)
	}

	// 3. wireguard-go on top, with its ordinary UDP sockets.
	level := device.LogLevelError
	if *verbose {
		level = device.LogLevelVerbose
	}
	dev := device.NewDevice(tunDev, conn.NewDefaultBind(), device.NewLogger(level, "("+*name+") "))
	defer dev.Close() // closes tunDev too, before the adapter goes
	if err := dev.IpcSet(strings.Join(uapi, "\n") + "\n"); err != nil {
		log.Fatalf("configure: %v", err)
	}
	if err := dev.Up(); err != nil {
		log.Fatal(err)
	}
	log.Printf("%s is up with %s; Ctrl+C to stop", *name, *address)

	// 4. Run until Ctrl+C (or the device closes itself, e.g. if the adapter is deleted).
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	select {
	case <-stop:
	case <-dev.Wait():
	}
	log.Printf("stopping")
}

// hexKey converts a base64 key, as wg prints it, into the hex that the UAPI wants.
func hexKey(b64 string) string {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != 32 {
		log.Fatalf("key %q: want 32 bytes in base64 (see -genkey)", b64)
	}
	return hex.EncodeToString(b)
}
