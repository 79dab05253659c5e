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
	becomeUnprivileged(t, uid, gid, nil)
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

// becomeUnprivileged gives the child of a test, started as root in a private mount
// namespace (Unshareflags: CLONE_NEWNS), a /dev/net/tun node of its own (mode 0666, on
// a private tmpfs) and then drops to uid, gid and the supplementary groups. Nothing
// outside the child changes.
func becomeUnprivileged(t *testing.T, uid, gid int, groups []int) {
	t.Helper()
	// Still root, in a private mount namespace (Unshareflags made the mounts private).
	dir, err := os.MkdirTemp("", "wintun-devnode")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID, "mode=0755,size=64k"); err != nil {
		t.Fatal(err)
	}
	node := dir + "/tun"
	err = unix.Mknod(node, unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200)))
	if err == nil {
		err = os.Chmod(node, 0o666) // the umask took bits off
	}
	if err == nil {
		err = unix.Mount(node, "/dev/net/tun", "", unix.MS_BIND, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	unix.Unmount(dir, unix.MNT_DETACH) // the bind mount keeps the node
	os.Remove(dir)                     // now: once dropped, the user cannot remove root's dir
	if err := syscall.Setgroups(groups); err != nil {
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
}

// ownerGroupChildEnv makes the test binary, re-executed by TestOwnerAndGroup, run
// TestOwnerAndGroupChild: its value is "uid:gid:groups:want", groups comma-separated
// (possibly none), want "ok" or "eperm".
const ownerGroupChildEnv = "WINTUN_TEST_OWNER_GROUP_CHILD"

// TestOwnerAndGroup shows that WithOwner and WithGroup together mean both, not either:
// the kernel (tun_not_capable in drivers/net/tun.c) refuses a user without
// CAP_NET_ADMIN whose euid is not the owner, or who is not in the group. An adapter
// made with owner nobody and group ownerGroupGID is tried by children running as
// nobody outside the group, as another user inside it (as primary and as
// supplementary group), and as nobody inside it: only the last starts a session.
func TestOwnerAndGroup(t *testing.T) {
	const ownerGroupGID, otherUID = 4242, 65533
	ns := netns.ForTest(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var a *wintun.Adapter
	if err := ns.Do(func() (err error) {
		a, err = wintun.CreateAdapter("wtboth", "Test", nil,
			wintun.WithOwner(unprivUID), wintun.WithGroup(ownerGroupGID))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ns.Do(a.Close)
	for _, c := range []struct {
		name     string
		uid, gid int
		groups   string
		want     string
	}{
		{"owner, not in the group", unprivUID, unprivGID, "", "eperm"},
		{"in the group (primary), not the owner", otherUID, ownerGroupGID, "", "eperm"},
		{"in the group (supplementary), not the owner", otherUID, unprivGID, "4242", "eperm"},
		{"owner and in the group", unprivUID, unprivGID, "4242", "ok"},
	} {
		var out []byte
		err := ns.Do(func() error {
			// The child is forked from this thread, so it starts in this namespace.
			cmd := exec.Command(exe, "-test.run=^TestOwnerAndGroupChild$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d:%d:%s:%s", ownerGroupChildEnv, c.uid, c.gid, c.groups, c.want))
			cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
			var err error
			out, err = cmd.CombinedOutput()
			return err
		})
		if err != nil || !strings.Contains(string(out), "owner and group child: as expected") {
			t.Errorf("%s (uid %d, gid %d, groups %q): want %s: %v\n%s", c.name, c.uid, c.gid, c.groups, c.want, err, out)
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "owner and group child: ") {
				t.Logf("%s: %s", c.name, strings.TrimPrefix(line, "owner and group child: "))
			}
		}
	}
}

// TestOwnerAndGroupChild runs only in the children of TestOwnerAndGroup.
func TestOwnerAndGroupChild(t *testing.T) {
	v := os.Getenv(ownerGroupChildEnv)
	if v == "" {
		t.Skip("run by TestOwnerAndGroup")
	}
	f := strings.Split(v, ":")
	if len(f) != 4 {
		t.Fatalf("%s=%q", ownerGroupChildEnv, v)
	}
	var uid, gid int
	if _, err := fmt.Sscanf(f[0]+" "+f[1], "%d %d", &uid, &gid); err != nil {
		t.Fatal(err)
	}
	var groups []int
	for _, g := range strings.Split(f[2], ",") {
		if g == "" {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(g, "%d", &n); err != nil {
			t.Fatal(err)
		}
		groups = append(groups, n)
	}
	becomeUnprivileged(t, uid, gid, groups)
	a, err := wintun.OpenAdapter("wtboth")
	if err != nil {
		t.Fatalf("OpenAdapter(wtboth): %v", err)
	}
	defer a.Close()
	s, err := a.StartSession(wintun.RingCapacityMin)
	switch want := f[3]; {
	case want == "ok" && err == nil:
		s.End()
		fmt.Println("owner and group child: as expected, session started")
	case want == "eperm" && errors.Is(err, syscall.EPERM) && strings.Contains(err.Error(), "with both set"):
		fmt.Printf("owner and group child: as expected, refused: %v\n", err)
	default:
		t.Errorf("StartSession as uid %d, gid %d, groups %v: %v; want %s", uid, gid, groups, err, want)
	}
}
