package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"go.wintun.dev/wintun/internal/netns"
)

// The interfaces of TestWgQuickWithUpstreamPeer; their sockets are in the test's
// private socketDir (see TestMain).
const (
	ifA = "wtwgA"
	ifB = "wtwgB"
)

// runIn runs a program inside ns with env added to the test's environment, and
// returns its combined output.
func runIn(ctx context.Context, ns *netns.NS, env []string, name string, args ...string) (string, error) {
	var out []byte
	err := ns.Do(func() error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), env...)
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// mustIn is runIn that fails the test.
func mustIn(t *testing.T, ns *netns.NS, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := runIn(ctx, ns, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// needTools skips the test, or fails it in CI (WINTUN_REQUIRE_PRIVILEGED=1, where
// .ci/run installs them), without the programs it drives.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("WINTUN_REQUIRE_PRIVILEGED") == "1" {
				t.Fatalf("%s is needed: %v (apt-get install wireguard-tools iproute2)", n, err)
			}
			t.Skipf("%s is needed: %v (apt-get install wireguard-tools iproute2)", n, err)
		}
	}
}

// goBuild builds pkg into dir/out.
func goBuild(t *testing.T, dir, out, pkg string) string {
	t.Helper()
	path := filepath.Join(dir, out)
	// The go command that runs the test puts its own directory first in PATH.
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to build %s: %v", pkg, err)
	}
	cmd := exec.Command(gocmd, "build", "-o", path, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return path
}

// childrenRunning returns the pids of the live processes whose parent is this
// process and whose executable is exe.
func childrenRunning(exe string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || target != exe {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// eventually retries f every 50 ms until it succeeds or 10 s have passed.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWgQuickWithUpstreamPeer starts wireguard-wintun with wg-quick in one namespace
// and upstream wireguard-go, configured with wg and ip, in another, joined by a veth;
// checks pings both ways over IPv4 and IPv6, TCP transfers, what wg show reports, and
// that wg-quick down leaves no interface, socket or process behind.
func TestWgQuickWithUpstreamPeer(t *testing.T) {
	netns.Require(t)
	needTools(t, "wg", "wg-quick", "ip", "bash")
	if _, err := os.Stat("/sys/module/wireguard"); err == nil {
		// wg-quick then refuses to fall back to a userspace implementation.
		const why = "the kernel's wireguard module is loaded: wg-quick would not use wireguard-wintun"
		if os.Getenv("WINTUN_REQUIRE_PRIVILEGED") == "1" {
			t.Fatal(why + " (WINTUN_REQUIRE_PRIVILEGED=1 makes this skip a failure)")
		}
		t.Skip(why)
	}
	prepareDaemons(t, ifA, ifB)

	dir := t.TempDir()
	daemonExe := goBuild(t, dir, "wireguard-wintun", "go.wintun.dev/wintun/cmd/wireguard-wintun")
	upstreamExe := goBuild(t, dir, "wireguard-go", "golang.zx2c4.com/wireguard")

	// wg-quick tries the kernel's WireGuard first; an ip that refuses it makes
	// wg-quick fall back to WG_QUICK_USERSPACE_IMPLEMENTATION without loading the
	// module for the whole host.
	ipPath, _ := exec.LookPath("ip")
	binDir := filepath.Join(dir, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\ncase \" $* \" in *\" type wireguard \"*) echo 'test: no kernel WireGuard' >&2; exit 2;; esac\nexec " + ipPath + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(binDir, "ip"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	// wg-quick puts its own directory first in PATH: a copy of it in binDir finds the
	// wrapper.
	quickPath, _ := exec.LookPath("wg-quick")
	script, err := os.ReadFile(quickPath)
	if err != nil {
		t.Fatal(err)
	}
	wgQuick := filepath.Join(binDir, "wg-quick")
	if err := os.WriteFile(wgQuick, script, 0o755); err != nil {
		t.Fatal(err)
	}
	quickEnv := []string{"PATH=" + binDir + ":" + os.Getenv("PATH"), "WG_QUICK_USERSPACE_IMPLEMENTATION=" + daemonExe}

	nsA, nsB := netns.ForTest(t), netns.ForTest(t)
	if err := nsA.Do(func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "wtvA"}, PeerName: "wtvB"}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		peer, err := netlink.LinkByName("wtvB")
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(peer, nsB.FD())
	}); err != nil {
		t.Fatalf("veth: %v", err)
	}
	mustIn(t, nsA, nil, "ip", "addr", "add", "192.0.2.1/24", "dev", "wtvA")
	mustIn(t, nsA, nil, "ip", "link", "set", "wtvA", "up")
	mustIn(t, nsB, nil, "ip", "addr", "add", "192.0.2.2/24", "dev", "wtvB")
	mustIn(t, nsB, nil, "ip", "link", "set", "wtvB", "up")

	keyA := strings.TrimSpace(mustIn(t, nsA, nil, "wg", "genkey"))
	keyB := strings.TrimSpace(mustIn(t, nsA, nil, "wg", "genkey"))
	pubOf := func(key string) string {
		var out bytes.Buffer
		cmd := exec.Command("wg", "pubkey")
		cmd.Stdin, cmd.Stdout = strings.NewReader(key+"\n"), &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("wg pubkey: %v", err)
		}
		return strings.TrimSpace(out.String())
	}
	pubA, pubB := pubOf(keyA), pubOf(keyB)

	// Side B: upstream wireguard-go in the foreground, configured with wg and ip.
	var logB bytes.Buffer
	upstream := exec.Command(upstreamExe, "-f", ifB)
	upstream.Env = append(os.Environ(), "LOG_LEVEL=verbose")
	upstream.Stdout, upstream.Stderr = &logB, &logB
	if err := nsB.Do(upstream.Start); err != nil {
		t.Fatalf("start wireguard-go: %v", err)
	}
	upstreamDone := make(chan error, 1)
	go func() { upstreamDone <- upstream.Wait() }()
	t.Cleanup(func() {
		upstream.Process.Signal(unix.SIGTERM)
		select {
		case <-upstreamDone:
		case <-time.After(5 * time.Second):
			upstream.Process.Kill()
			<-upstreamDone
		}
		if t.Failed() {
			t.Logf("wireguard-go's log:\n%s", logB.String())
		}
	})
	eventually(t, "wireguard-go's socket", func() error {
		_, err := os.Stat(filepath.Join(socketDir, ifB+".sock"))
		return err
	})
	keyFileB := filepath.Join(dir, "keyB")
	if err := os.WriteFile(keyFileB, []byte(keyB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustIn(t, nsB, nil, "wg", "set", ifB, "listen-port", "51821", "private-key", keyFileB,
		"peer", pubA, "endpoint", "192.0.2.1:51820", "allowed-ips", "10.77.0.1/32,fd77::1/128")
	mustIn(t, nsB, nil, "ip", "addr", "add", "10.77.0.2/24", "dev", ifB)
	mustIn(t, nsB, nil, "ip", "-6", "addr", "add", "fd77::2/64", "dev", ifB)
	mustIn(t, nsB, nil, "ip", "link", "set", ifB, "up")

	// Side A: wg-quick with wireguard-wintun. No DNS and no default route, so that
	// wg-quick touches nothing outside the namespace.
	confA := filepath.Join(dir, ifA+".conf")
	conf := fmt.Sprintf("[Interface]\nPrivateKey = %s\nAddress = 10.77.0.1/24, fd77::1/64\nListenPort = 51820\n\n"+
		"[Peer]\nPublicKey = %s\nEndpoint = 192.0.2.2:51821\nAllowedIPs = 10.77.0.2/32, fd77::2/128\n", keyA, pubB)
	if err := os.WriteFile(confA, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	upOut := mustIn(t, nsA, quickEnv, wgQuick, "up", confA)
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			runIn(ctx, nsA, quickEnv, wgQuick, "down", confA)
		}
		for _, pid := range childrenRunning(daemonExe) {
			unix.Kill(pid, unix.SIGKILL)
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, 0, nil)
		}
	})
	t.Logf("wg-quick up:\n%s", upOut)
	if !strings.Contains(upOut, "test: no kernel WireGuard") || !strings.Contains(upOut, daemonExe+" "+ifA) {
		t.Fatalf("wg-quick up did not start %s:\n%s", daemonExe, upOut)
	}
	daemons := childrenRunning(daemonExe)
	if len(daemons) != 1 {
		t.Fatalf("%d wireguard-wintun processes run, want 1 (pids %v)\nwg-quick up:\n%s", len(daemons), daemons, upOut)
	}

	for _, p := range []struct {
		from *netns.NS
		dst  string
	}{{nsA, "10.77.0.2"}, {nsB, "10.77.0.1"}, {nsA, "fd77::2"}, {nsB, "fd77::1"}} {
		if err := netns.Ping(p.from, netip.Addr{}, netip.MustParseAddr(p.dst), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	netns.TransferTCP(t, nsA, nsB, "10.77.0.2:0", 4<<20)
	netns.TransferTCP(t, nsB, nsA, "[fd77::1]:0", 4<<20)

	show := mustIn(t, nsA, nil, "wg", "show", ifA)
	for _, want := range []string{"peer: " + pubB, "latest handshake:", "transfer:", "listening port: 51820"} {
		if !strings.Contains(show, want) {
			t.Errorf("wg show %s lacks %q:\n%s", ifA, want, show)
		}
	}
	showconf := mustIn(t, nsA, nil, "wg", "showconf", ifA)
	for _, want := range []string{"ListenPort = 51820", "PrivateKey = " + keyA, "PublicKey = " + pubB, "Endpoint = 192.0.2.2:51821"} {
		if !strings.Contains(showconf, want) {
			t.Errorf("wg showconf %s lacks %q", ifA, strings.SplitN(want, " = ", 2)[0]) // not the key itself
		}
	}
	// The dump's peer line: public key, preshared key, endpoint, allowed IPs, latest
	// handshake, bytes received, bytes sent, keepalive.
	dump := strings.Split(strings.TrimSpace(mustIn(t, nsA, nil, "wg", "show", ifA, "dump")), "\n")
	if len(dump) != 2 {
		t.Fatalf("wg show %s dump: want the interface and one peer:\n%s", ifA, strings.Join(dump, "\n"))
	}
	f := strings.Split(dump[1], "\t")
	if len(f) != 8 || f[0] != pubB || f[2] != "192.0.2.2:51821" {
		t.Fatalf("wg show %s dump: peer line %q", ifA, dump[1])
	}
	for i, what := range map[int]string{4: "latest handshake", 5: "bytes received", 6: "bytes sent"} {
		if n, err := strconv.ParseInt(f[i], 10, 64); err != nil || n <= 0 {
			t.Errorf("wg show %s dump: %s is %q, want a positive number", ifA, what, f[i])
		}
	}
	if n, _ := strconv.ParseInt(f[5], 10, 64); n < 4<<20 {
		t.Errorf("wg show %s dump: %d bytes received, want at least the %d of a transfer", ifA, n, 4<<20)
	}

	mustIn(t, nsA, quickEnv, wgQuick, "down", confA)
	downDone = true
	ws := reap(t, daemons[0])
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("the daemon ended with %v (status %#x), want exit status 0", ws, uint32(ws))
	}
	if _, err := os.Stat(filepath.Join(socketDir, ifA+".sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after wg-quick down, %s/%s.sock: %v, want it gone", socketDir, ifA, err)
	}
	if err := nsA.Do(func() error {
		_, err := netlink.LinkByName(ifA)
		return err
	}); !errors.As(err, new(netlink.LinkNotFoundError)) {
		t.Errorf("after wg-quick down, %s: %v, want no such interface", ifA, err)
	}
}
