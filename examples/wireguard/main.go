// Command wireguard runs a WireGuard interface whose tun device is a wintun adapter:
// wireguard-go does the cryptography and the UDP, this library moves the packets
// between the kernel and wireguard-go through its rings.
//
// Make a key pair for each side, as with wg genkey and wg pubkey (umask 077 keeps the
// private key file to its owner):
//
//	umask 077
//	go run ./examples/wireguard -genkey > private.key
//	go run ./examples/wireguard -pubkey < private.key
//
// then run one side per machine (as root):
//
//	go run ./examples/wireguard -private-key-file private.key -address 10.100.0.1/24 \
//		-port 51820 -peer PEER_PUBLIC -endpoint 192.0.2.2:51820 -allowed-ips 10.100.0.2/32
//
// The private key comes from a file, or from standard input with -private-key-file -,
// never from the command line: every local user can read a process's arguments (ps,
// /proc/PID/cmdline). Keys are in base64, as the wg tool prints them. Ctrl+C removes
// the interface.
package main

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/wgtun"
)

func main() {
	err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	var flagErr parseError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &flagErr): // the flag package has printed it, with the usage
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "wireguard:", err)
		os.Exit(1)
	}
}

// config is what the command line asks for, all checked before anything is created.
type config struct {
	name    string
	address netip.Prefix
	uapi    string // wireguard-go's configuration, with the private key: never printed
	verbose bool
}

// refused stands for -key and -private-key, the flags one might try for a private key:
// it takes no value and only records that it was given, so that the command refuses
// them with the reason, and without the flag package quoting the value in an error.
type refused struct{ given bool }

func (r *refused) String() string   { return "" }
func (r *refused) Set(string) error { r.given = true; return nil }
func (r *refused) IsBoolFlag() bool { return true }

// flags are the command line's options.
type flags struct {
	genkey, pubkey, verbose                         *bool
	name, keyFile, address, peer, endpoint, allowed *string
	port                                            *int
	key, privateKey                                 refused
}

func newFlagSet(stderr io.Writer) (*flag.FlagSet, *flags) {
	fs := flag.NewFlagSet("wireguard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: wireguard -private-key-file PATH|- -peer PUBLIC_KEY [-address PREFIX] [-port N]\n"+
			"                 [-endpoint IP:PORT] [-allowed-ips PREFIX,...] [-name NAME] [-v]\n"+
			"       wireguard -genkey\n"+
			"       wireguard -pubkey < PRIVATE_KEY_FILE\n\n")
		fs.PrintDefaults()
	}
	f := &flags{
		genkey:   fs.Bool("genkey", false, "print a new private key in base64, like wg genkey, and exit"),
		pubkey:   fs.Bool("pubkey", false, "read a private key on standard input, print its public key like wg pubkey, and exit"),
		name:     fs.String("name", "wg0", "interface name"),
		keyFile:  fs.String("private-key-file", "", "read this side's private key (base64) from `PATH`, or from standard input if PATH is -"),
		address:  fs.String("address", "10.100.0.1/24", "this side's tunnel address with its prefix length"),
		port:     fs.Int("port", 51820, "UDP port to listen on"),
		peer:     fs.String("peer", "", "the peer's public key (base64)"),
		endpoint: fs.String("endpoint", "", "the peer's IP address and UDP port (optional if the peer connects to us)"),
		allowed:  fs.String("allowed-ips", "10.100.0.2/32", "comma-separated prefixes routed to the peer"),
		verbose:  fs.Bool("v", false, "log wireguard-go's messages"),
	}
	fs.Var(&f.key, "key", "not accepted (a key on the command line shows in ps and /proc/PID/cmdline): use -private-key-file")
	fs.Var(&f.privateKey, "private-key", "not accepted: use -private-key-file")
	return fs, f
}

// errKeyOnCommandLine says why -key and -private-key are refused.
var errKeyOnCommandLine = errors.New("a private key on the command line is readable by every local user " +
	"(ps, /proc/PID/cmdline): put it in a file only you can read and pass -private-key-file PATH, " +
	"or pass -private-key-file - and give it on standard input")

// parseError is an error of the flag package, which prints it with the usage.
type parseError struct{ error }

func (e parseError) Unwrap() error { return e.error }

// parseFlags parses args, refusing a key on the command line and any positional
// argument (which could be a key given after -key). Neither error quotes the argument.
func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	fs, f := newFlagSet(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, parseError{err}
	}
	if f.key.given || f.privateKey.given {
		return nil, errKeyOnCommandLine
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%d unexpected argument(s) after the flags (not shown, in case they hold a key); see -h", fs.NArg())
	}
	return f, nil
}

// run is the command: key generation, or the tunnel until Ctrl+C.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	switch {
	case *f.genkey:
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(k.Bytes()))
		return err
	case *f.pubkey:
		b, err := readPrivateKey("-", stdin, stderr)
		if err != nil {
			return err
		}
		k, err := ecdh.X25519().NewPrivateKey(b)
		if err != nil {
			return errors.New("invalid private key")
		}
		_, err = fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()))
		return err
	}
	c, err := configure(f, stdin, stderr)
	if err != nil {
		return err
	}
	return up(c)
}

// parseArgs reads and checks the tunnel's command line, the private key included.
func parseArgs(args []string, stdin io.Reader, stderr io.Writer) (*config, error) {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return nil, err
	}
	return configure(f, stdin, stderr)
}

// configure checks the options and builds wireguard-go's configuration from them.
func configure(f *flags, stdin io.Reader, stderr io.Writer) (*config, error) {
	if *f.keyFile == "" {
		return nil, errors.New("this side's private key is missing: give -private-key-file PATH, or -private-key-file - to read it on standard input")
	}
	if *f.peer == "" {
		return nil, errors.New("the peer's public key is missing: give -peer KEY")
	}
	address, err := netip.ParsePrefix(*f.address)
	if err != nil {
		return nil, fmt.Errorf("-address %s: want the tunnel address with its prefix length, like 10.100.0.1/24", *f.address)
	}
	if *f.port < 0 || *f.port > 65535 {
		return nil, fmt.Errorf("-port %d: want 0 to 65535", *f.port)
	}
	peer, err := base64.StdEncoding.DecodeString(*f.peer)
	if err != nil || len(peer) != 32 {
		// Not quoted: a private key pasted here by mistake must not be printed.
		return nil, errors.New("-peer: invalid public key: want 32 bytes in base64, as `wg pubkey` or -pubkey print")
	}
	// wireguard-go is configured through its UAPI text: keys in hex, one key=value
	// per line; "public_key" starts the peer's section.
	uapi := []string{"", fmt.Sprintf("listen_port=%d", *f.port), "public_key=" + hex.EncodeToString(peer)}
	if *f.endpoint != "" {
		if _, err := netip.ParseAddrPort(*f.endpoint); err != nil {
			return nil, fmt.Errorf("-endpoint %s: want an IP address and a port, like 192.0.2.2:51820 or [2001:db8::2]:51820", *f.endpoint)
		}
		uapi = append(uapi, "endpoint="+*f.endpoint)
	}
	for _, s := range strings.Split(*f.allowed, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("-allowed-ips: %q: want prefixes with their length, like 10.100.0.2/32", strings.TrimSpace(s))
		}
		uapi = append(uapi, "allowed_ip="+p.String())
	}
	// The key is read last, so that standard input is read only for a command line
	// that is otherwise right.
	priv, err := readPrivateKey(*f.keyFile, stdin, stderr)
	if err != nil {
		return nil, err
	}
	uapi[0] = "private_key=" + hex.EncodeToString(priv)
	return &config{name: *f.name, address: address, uapi: strings.Join(uapi, "\n") + "\n", verbose: *f.verbose}, nil
}

// maxKeyFile bounds what is read for a key: a base64 key is 44 bytes.
const maxKeyFile = 4096

// readPrivateKey reads a private key in base64, as `wg genkey` writes it (surrounding
// white space, such as the final newline, is ignored), from the file path, or from
// stdin when path is "-". Its errors never include what was read, so a malformed key
// is not printed. A key file that other users can access is used, with a warning on
// stderr, as wg does.
func readPrivateKey(path string, stdin io.Reader, stderr io.Writer) ([]byte, error) {
	where := "in " + path
	var r io.Reader
	if path == "-" {
		where, r = "on standard input", stdin
	} else {
		file, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("private key: %w", err)
		}
		defer file.Close()
		if fi, err := file.Stat(); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(stderr, "warning: private key file %s is accessible to other users (mode %v): chmod 600 %s\n",
				path, fi.Mode().Perm(), path)
		}
		r = file
	}
	b, err := io.ReadAll(io.LimitReader(r, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", where, err)
	}
	bad := fmt.Errorf("invalid private key in %s: want 32 bytes in base64, as `wg genkey` or -genkey print", where)
	if len(b) > maxKeyFile {
		return nil, bad
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, bad
	}
	return key, nil
}

// up runs the tunnel until Ctrl+C.
func up(c *config) error {
	// 1. The adapter: a layer 3 interface with the tunnel address. WireGuard's
	//    overhead leaves 1420 bytes for the packets inside.
	adapter, err := wintun.CreateAdapter(c.name, "WireGuard", nil, wintun.WithMTU(device.DefaultMTU))
	if err != nil {
		return err
	}
	defer adapter.Close() // removes the interface
	if err := adapter.AddAddress(c.address); err != nil {
		return err
	}

	// 2. wgtun makes it a tun.Device: it starts a session, whose rings carry the packets.
	tunDev, err := wgtun.New(adapter)
	if err != nil {
		return err
	}

	// 3. wireguard-go on top, with its ordinary UDP sockets.
	level := device.LogLevelError
	if c.verbose {
		level = device.LogLevelVerbose
	}
	dev := device.NewDevice(tunDev, conn.NewDefaultBind(), device.NewLogger(level, "("+c.name+") "))
	defer dev.Close() // closes tunDev too, before the adapter goes
	if err := dev.IpcSet(c.uapi); err != nil {
		// wireguard-go's errors name the setting, not its value.
		return fmt.Errorf("configure: %w", err)
	}
	if err := dev.Up(); err != nil {
		return err
	}
	log.Printf("%s is up with %s; Ctrl+C to stop", c.name, c.address)

	// 4. Run until Ctrl+C (or the device closes itself, e.g. if the adapter is deleted).
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(stop)
	select {
	case <-stop:
	case <-dev.Wait():
	}
	log.Printf("stopping")
	return nil
}
