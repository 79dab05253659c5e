package wintun_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"

	"golang.org/x/sys/unix"
)

// privChildEnv makes the test binary, re-executed by TestUnprivilegedUser, run
// TestUnprivilegedChild as that user: its value is "uid:gid".
const privChildEnv = "WINTUN_TEST_UNPRIVILEGED_CHILD"

// The unprivileged user: nobody/nogroup, which every Linux system has.
const unprivUID, unprivGID = 65534, 65534

// TestUnprivilegedUser creates adapters for the user nobody (WithOwner), the group
// nogroup (WithGroup) and nobody at all, then runs a child process as nobody in the
// same network namespace: it must start sessions on the first two and get a clear
// EPERM on the third.
//
// /dev/net/tun is mode 0600 on some systems. Rather than change the host's device node
// for the test's duration, the child starts in a private mount namespace where, still
// root, it bind-mounts a node of its own (mode 0666, on a private tmpfs) over
// /dev/net/tun, and only then drops to nobody. Nothing outside the child changes.
func TestUnprivilegedUser(t *testing.T) {
	ns := netns.ForTest(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var adapters []*wintun.Adapter
	defer func() {
		for _, a := range adapters {
			ns.Do(func() error { return a.Close() })
		}
	}()
	var out []byte
	err = ns.Do(func() error {
		for _, c := range []struct {
			name string
			opts []wintun.Option
		}{
			{"wtowner", []wintun.Option{wintun.WithOwner(unprivUID)}},
			{"wtgroup", []wintun.Option{wintun.WithGroup(unprivGID)}},
			{"wtroot", nil},
		} {
			a, err := wintun.CreateAdapter(c.name, "Test", nil, c.opts...)
			if err != nil {
				return err
			}
			adapters = append(adapters, a)
		}
		// The child is forked from this thread, so it starts in this namespace.
		cmd := exec.Command(exe, "-test.run=^TestUnprivilegedChild$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d:%d", privChildEnv, unprivUID, unprivGID))
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil || !strings.Contains(string(out), "unprivileged child: all checks passed") {
		t.Fatalf("child as uid %d: %v\n%s", unprivUID, err, out)
	}
	t.Logf("child output:\n%s", out)
}

// TestUnprivilegedChild runs only in the child of TestUnprivilegedUser.
func TestUnprivilegedChild(t *testing.T) {
	v := os.Getenv(privChildEnv)
	if v == "" {
		t.Skip("run by TestUnprivilegedUser")
	}
	var uid, gid int
	if _, err := fmt.Sscanf(v, "%d:%d", &uid, &gid); err != nil {
		t.Fatal(err)
	}
	// Still root, in a private mount namespace (Unshareflags made the mounts private).
	dir, err := os.MkdirTemp("", "wintun-devnode")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID, "mode=0755,size=64k"); err != nil {
		t.Fatal(err)
	}
	node := dir + "/tun"
	if err := unix.Mknod(node, unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200))); err == nil {
		err = os.Chmod(node, 0o666)
	}
	if err == nil {
		err = unix.Mount(node, "/dev/net/tun", "", unix.MS_BIND, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	unix.Unmount(dir, unix.MNT_DETACH) // the bind mount keeps the node
	if err := syscall.Setgroups(nil); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setgid(gid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setuid(uid); err != nil {
		t.Fatal(err)
	}
	if ok, _ := netns.Privileged(); ok || os.Geteuid() != uid {
		t.Fatalf("still privileged after dropping to uid %d", uid)
	}
	for _, name := range []string{"wtowner", "wtgroup"} {
		a, err := wintun.OpenAdapter(name)
		if err != nil {
			t.Errorf("OpenAdapter(%q) as uid %d: %v", name, uid, err)
			continue
		}
		if _, err := a.StartSession(0x12345); err == nil || errors.Is(err, syscall.EPERM) {
			t.Errorf("StartSession with an invalid capacity: %v, want a validation error", err)
		}
		s, err := a.StartSession(wintun.RingCapacityMin)
		if err != nil {
			t.Errorf("StartSession on %s as uid %d: %v", name, uid, err)
		} else {
			s.End()
		}
		a.Close()
	}
	a, err := wintun.OpenAdapter("wtroot")
	if err != nil {
		t.Fatalf("OpenAdapter(wtroot): %v", err)
	}
	_, err = a.StartSession(wintun.RingCapacityMin)
	if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Errorf("StartSession on an adapter without owner or group, as uid %d: %v; want EPERM naming CAP_NET_ADMIN", uid, err)
	}
	t.Logf("refused as expected: %v", err)
	a.Close()
	// Names are validated before any system call; creating needs CAP_NET_ADMIN.
	if _, err := wintun.CreateAdapter("bad/name", "Test", nil); err == nil || errors.Is(err, syscall.EPERM) {
		t.Errorf("CreateAdapter(bad/name) = %v, want a name error before any privilege check", err)
	}
	if _, err := wintun.CreateAdapter("wtnew", "Test", nil); !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Errorf("CreateAdapter as uid %d: %v; want EPERM naming CAP_NET_ADMIN", uid, err)
	}
	if !t.Failed() {
		fmt.Println("unprivileged child: all checks passed")
	}
}
