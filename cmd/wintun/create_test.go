//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
)

// run calls a subcommand inside ns and returns its output.
func run(t *testing.T, ns *netns.NS, cmd func(*bytes.Buffer) error) (string, error) {
	t.Helper()
	var b bytes.Buffer
	err := ns.Do(func() error { return cmd(&b) })
	return b.String(), err
}

func listJSON(t *testing.T, ns *netns.NS) []adapterInfo {
	t.Helper()
	out, err := run(t, ns, func(b *bytes.Buffer) error { return cmdList(b, []string{"--json"}) })
	if err != nil {
		t.Fatalf("list --json: %v", err)
	}
	var l []adapterInfo
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	return l
}

func TestCreateListDelete(t *testing.T) {
	ns := netns.ForTest(t)
	guid := "0b5ca1ab-1e00-4000-8000-00000000c0de"
	out, err := run(t, ns, func(b *bytes.Buffer) error {
		return cmdCreate(b, []string{"wt0", "--type", "Test", "--guid", guid, "--address", "10.9.0.1/24",
			"--address", "fd00:9::1/64", "--route", "10.10.0.0/16", "--mtu", "1400", "--owner", "nobody", "--group", "100"})
	})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if !strings.Contains(out, "created adapter wt0") || !strings.Contains(out, "wintun delete wt0") {
		t.Errorf("create printed:\n%s", out)
	}
	// The adapter outlives the command, with everything asked for.
	l := listJSON(t, ns)
	if len(l) != 1 {
		t.Fatalf("list: %d adapters, want 1: %+v", len(l), l)
	}
	a := l[0]
	if a.Name != "wt0" || a.GUID != guid || a.Type != "Test" || a.MTU != 1400 || !a.Persistent || !a.AdminUp ||
		a.Carrier || a.Sessions != 0 || a.Owner == nil || *a.Owner != 65534 || a.Group == nil || *a.Group != 100 ||
		!strings.HasPrefix(a.LUID, "0x35") || a.Index == 0 {
		t.Errorf("list: %+v", a)
	}
	if strings.Join(a.Addresses, " ") != "10.9.0.1/24 fd00:9::1/64" {
		t.Errorf("addresses %v", a.Addresses)
	}
	ns.Do(func() error {
		routes, _ := netlink.RouteList(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Index: a.Index}}, netlink.FAMILY_V4)
		found := false
		for _, r := range routes {
			found = found || r.Dst != nil && r.Dst.String() == "10.10.0.0/16"
		}
		if !found {
			t.Errorf("route 10.10.0.0/16 missing: %v", routes)
		}
		return nil
	})

	// A second create of the same name fails and says what to do.
	_, err = run(t, ns, func(b *bytes.Buffer) error { return cmdCreate(b, []string{"wt0"}) })
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "wintun delete wt0") {
		t.Errorf("second create: %v", err)
	}
	// A failing configuration step takes the adapter away again.
	_, err = run(t, ns, func(b *bytes.Buffer) error {
		return cmdCreate(b, []string{"wt1", "--address", "10.9.0.5/24", "--route", "10.9.0.0/24"})
	})
	if err == nil || !strings.Contains(err.Error(), "removed again") {
		t.Errorf("create with a clashing route: %v", err)
	}

	// A session from another handle: list shows it, delete refuses without --force.
	sessionDone := make(chan struct{})
	sessionUp := make(chan error)
	go ns.Do(func() error {
		ad, err := wintun.OpenAdapter("wt0")
		if err != nil {
			sessionUp <- err
			return nil
		}
		defer ad.Close()
		s, err := ad.StartSession(wintun.RingCapacityMin)
		sessionUp <- err
		if err == nil {
			<-sessionDone
			s.End()
		}
		return nil
	})
	if err := <-sessionUp; err != nil {
		t.Fatal(err)
	}
	if l := listJSON(t, ns); len(l) != 1 || l[0].Sessions != 1 || !l[0].Carrier {
		t.Errorf("list with a session: %+v", l)
	}
	out, _ = run(t, ns, func(b *bytes.Buffer) error { return cmdList(b, nil) })
	for _, want := range []string{"wt0: index", "GUID " + guid, `type "Test"`, "carrier on", "persistent",
		"owner uid 65534", "MTU 1400, 1 session(s) attached, addresses 10.9.0.1/24, fd00:9::1/64", "system -> app:"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	_, err = run(t, ns, func(b *bytes.Buffer) error { return cmdDelete(b, []string{"wt0"}) })
	if err == nil || !strings.Contains(err.Error(), "in use (1 session(s) attached)") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("delete in use: %v", err)
	}
	close(sessionDone)

	// Interfaces of other programs, here a tun device without this library's alias,
	// are refused.
	if err := ns.Do(func() error {
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "other0"}, Mode: netlink.TUNTAP_MODE_TUN})
	}); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, ns, func(b *bytes.Buffer) error { return cmdDelete(b, []string{"other0"}) })
	if err == nil || !strings.Contains(err.Error(), "not one of wintun's adapters") {
		t.Errorf("delete other0: %v", err)
	}
	_, err = run(t, ns, func(b *bytes.Buffer) error { return cmdDelete(b, []string{"nothere"}) })
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "wintun list") {
		t.Errorf("delete nothere: %v", err)
	}

	deadline := time.Now().Add(3 * time.Second)
	for {
		out, err = run(t, ns, func(b *bytes.Buffer) error { return cmdDelete(b, []string{"wt0"}) })
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the session's queue detaches as End returns
	}
	if err != nil || !strings.Contains(out, "deleted adapter wt0") {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if l := listJSON(t, ns); len(l) != 0 {
		t.Errorf("list after delete: %+v", l)
	}
	out, _ = run(t, ns, func(b *bytes.Buffer) error { return cmdList(b, nil) })
	if !strings.Contains(out, "no wintun adapters") {
		t.Errorf("empty list printed:\n%s", out)
	}
	ns.Do(func() error {
		if _, err := netlink.LinkByName("other0"); err != nil {
			t.Errorf("other0 gone: %v", err)
		}
		return nil
	})
}

func TestDeleteForce(t *testing.T) {
	ns := netns.ForTest(t)
	// A non-persistent adapter held by a running program (this test).
	held := make(chan *wintun.Adapter, 1)
	if err := ns.Do(func() error {
		a, err := wintun.CreateAdapter("held0", "Test", nil)
		held <- a
		return err
	}); err != nil {
		t.Fatal(err)
	}
	a := <-held
	defer ns.Do(a.Close)
	_, err := run(t, ns, func(b *bytes.Buffer) error { return cmdDelete(b, []string{"held0"}) })
	if err == nil || !strings.Contains(err.Error(), "creating process is still running") {
		t.Errorf("delete held0: %v", err)
	}
	out, err := run(t, ns, func(b *bytes.Buffer) error { return cmdDelete(b, []string{"--force", "held0"}) })
	if err != nil || !strings.Contains(out, "deleted adapter held0") {
		t.Errorf("delete --force: %v\n%s", err, out)
	}
}

func TestUninstall(t *testing.T) {
	ns := netns.ForTest(t)
	for _, name := range []string{"u0", "u1"} {
		if out, err := run(t, ns, func(b *bytes.Buffer) error { return cmdCreate(b, []string{name}) }); err != nil {
			t.Fatalf("create %s: %v\n%s", name, err, out)
		}
	}
	held := make(chan *wintun.Adapter, 1)
	if err := ns.Do(func() error {
		a, err := wintun.CreateAdapter("busy0", "Test", nil)
		held <- a
		return err
	}); err != nil {
		t.Fatal(err)
	}
	a := <-held
	defer ns.Do(a.Close)
	out, err := run(t, ns, func(b *bytes.Buffer) error { return cmdUninstall(b, []string{"--json"}) })
	if err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	var r struct {
		Removed []string `json:"removed"`
		InUse   []string `json:"in_use"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Join(r.Removed, ",") != "u0,u1" || strings.Join(r.InUse, ",") != "busy0" {
		t.Errorf("uninstall: %+v", r)
	}
	out, err = run(t, ns, func(b *bytes.Buffer) error { return cmdUninstall(b, nil) })
	if err != nil || out != "left in place, in use by a running process: busy0\n" {
		t.Errorf("second uninstall: %v\n%q", err, out)
	}
}

func TestVersion(t *testing.T) {
	ns := netns.ForTest(t) // RunningVersion may make a temporary tun device
	out, err := run(t, ns, func(b *bytes.Buffer) error { return cmdVersion(b, []string{"--json"}) })
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Version, Tun_Driver string }
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version != version || !strings.Contains(out, `"tun_driver": "1.`) {
		t.Errorf("version --json: %v\n%s", err, out)
	}
	out, err = run(t, ns, func(b *bytes.Buffer) error { return cmdVersion(b, nil) })
	if err != nil || !strings.HasPrefix(out, "wintun "+version) || !strings.Contains(out, "tun driver: 1.") {
		t.Errorf("version: %v\n%s", err, out)
	}
}

// TestCreateOwnerAndGroup checks that create's help and output say what the kernel
// does with both --owner and --group: a user needs both, not either (tun_not_capable
// in drivers/net/tun.c; privilege_linux_test.go shows it with real users).
func TestCreateOwnerAndGroup(t *testing.T) {
	const both = "with both set, a user must be the owner and in the group"
	var b bytes.Buffer
	cmdCreate(&b, []string{"--help"})
	if !strings.Contains(b.String(), both) {
		t.Errorf("create --help does not say %q:\n%s", both, b.String())
	}
	ns := netns.ForTest(t)
	out, err := run(t, ns, func(b *bytes.Buffer) error {
		return cmdCreate(b, []string{"wt0", "--owner", "nobody", "--group", "100"})
	})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if !strings.Contains(out, "only user nobody, and only while in group 100") || !strings.Contains(out, both) {
		t.Errorf("create --owner nobody --group 100 printed:\n%s", out)
	}
	out, _ = run(t, ns, func(b *bytes.Buffer) error { return cmdList(b, nil) })
	if !strings.Contains(out, "owner uid 65534 and group gid 100 (a user needs both)") {
		t.Errorf("list does not say both are needed:\n%s", out)
	}
	for _, c := range []struct{ flag, value, want string }{
		{"--owner", "nobody", "only user nobody"},
		{"--group", "100", "members of group 100"},
	} {
		out, err := run(t, ns, func(b *bytes.Buffer) error {
			return cmdCreate(b, []string{"wt" + c.flag[2:], c.flag, c.value})
		})
		if err != nil || !strings.Contains(out, c.want) || strings.Contains(out, both) {
			t.Errorf("create %s %s: %v\n%s", c.flag, c.value, err, out)
		}
	}
}
