package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The WireGuard daemon rows: the programs wg and wg-quick drive, each side started in
// the foreground inside its namespace and configured with wg set, as a user would.
// wg/wireguard-wintun is this repository's cmd/wireguard-wintun; wg/wireguard-go-daemon
// is upstream wireguard-go's own program, built from the module the library uses.
var wgDaemons = map[string]string{
	"wireguard-wintun":    "go.wintun.dev/wintun/cmd/wireguard-wintun",
	"wireguard-go-daemon": "golang.zx2c4.com/wireguard",
}

// wgDaemonNames are the interfaces of the daemon rows, one per namespace: their UAPI
// sockets share the host's /var/run/wireguard, so the names differ.
var wgDaemonNames = map[string]string{nsA: "wtwga", nsB: "wtwgb"}

// daemonPaths are the daemons main built for this run, by row name without "wg/", and
// daemonDir is where it built them.
var daemonPaths map[string]string
var daemonDir string

// buildDaemons builds the daemons the forwarders name into dir and returns their paths.
func buildDaemons(dir string, forwarders []string) (map[string]string, error) {
	paths := map[string]string{}
	for _, f := range forwarders {
		name, ok := strings.CutPrefix(f, "wg/")
		impl, known := wgDaemons[name]
		if !ok || !known {
			continue
		}
		path := filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", path, impl).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", impl, err, out)
		}
		paths[name] = path
	}
	if len(paths) > 0 {
		if _, err := exec.LookPath("wg"); err != nil {
			return nil, fmt.Errorf("wg not found: apt-get install -y wireguard-tools")
		}
	}
	return paths, nil
}

// startDaemon starts exe in the foreground in ns for the interface name and waits for
// its UAPI socket.
func startDaemon(ns, exe, name string) (*exec.Cmd, error) {
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-f", name)
	// WG_PROCESS_FOREGROUND=1 keeps wireguard-go from printing its banner.
	cmd.Env = append(os.Environ(), "LOG_LEVEL=error", "WG_PROCESS_FOREGROUND=1")
	cmd.Stderr = os.Stderr
	// The daemon outlives neither the bench nor its namespace, which it keeps alive.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sock := filepath.Join("/var/run/wireguard", name+".sock")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return cmd, nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("%s %s: no socket %s", exe, name, sock)
		}
	}
}

// configureDaemon sets one side's key, port and peer with wg set; keys are hex.
func configureDaemon(ns, name, privHex, peerPubHex, endpoint, allowed, dir string) error {
	b64 := func(h string) string {
		b, _ := hex.DecodeString(h)
		return base64.StdEncoding.EncodeToString(b)
	}
	keyFile := filepath.Join(dir, name+".key")
	if err := os.WriteFile(keyFile, []byte(b64(privHex)+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(keyFile)
	return run("ip", "netns", "exec", ns, "wg", "set", name, "listen-port", fmt.Sprint(wgPort),
		"private-key", keyFile, "peer", b64(peerPubHex), "endpoint", fmt.Sprintf("%s:%d", endpoint, wgPort),
		"allowed-ips", allowed)
}
