//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"unicode"

	"github.com/vishvananda/netlink"
	"go.wintun.dev/wintun"
)

const createUsage = `usage: wintun create NAME [--type T] [--guid GUID] [--address PREFIX]... [--route PREFIX]...
                     [--mtu N] [--owner USER] [--group GROUP]

Creates adapter NAME, brings it up and leaves it in place after this command exits, until
` + "`wintun delete NAME`" + ` or ` + "`wintun uninstall`" + `. Programs then open it with
wintun.OpenAdapter (or ` + "`wintun pipe NAME`" + `). With --owner USER, that user may start
sessions on it without CAP_NET_ADMIN; with --group GROUP, the members of that group may;
with both set, a user must be the owner and in the group (the kernel requires both, not
either). Creating needs CAP_NET_ADMIN.

`

func cmdCreate(out io.Writer, args []string) error {
	c := newCommand("create", createUsage, out)
	tunnelType := c.String("type", "Wintun", "tunnel type `T` recorded with the adapter (1 to 64 bytes)")
	guidFlag := c.String("guid", "", "adapter `GUID`, xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (default random)")
	var addrs, routes prefixList
	c.Var(&addrs, "address", "add address `PREFIX` (e.g. 10.0.0.1/24) to the system side; repeatable")
	c.Var(&routes, "route", "route network `PREFIX` through the adapter; repeatable (the network of an "+
		"--address is routed already)")
	mtu := c.Int("mtu", 0, "MTU `N`, 68 to 65535, 1280 or more for IPv6 (default the kernel's, 1500)")
	owner := c.String("owner", "", "`USER` (name or uid) who may start sessions without CAP_NET_ADMIN (with --group: only while in GROUP)")
	group := c.String("group", "", "`GROUP` (name or gid) whose members may start sessions without CAP_NET_ADMIN (with --owner: only USER)")
	pos, err := c.parseArgs(args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	// Everything is validated before anything is created.
	if err := checkName("create", name); err != nil {
		return err
	}
	if n := len(*tunnelType); n < 1 || n > 64 || strings.ContainsFunc(*tunnelType, unicode.IsControl) {
		return usageError{"create", fmt.Sprintf("--type %q: want 1 to 64 bytes, no control characters", *tunnelType)}
	}
	var guid *wintun.GUID
	if *guidFlag != "" {
		g, err := wintun.ParseGUID(*guidFlag)
		if err != nil {
			return usageError{"create", "--guid: " + strings.TrimPrefix(err.Error(), "wintun: ")}
		}
		guid = &g
	}
	if *mtu != 0 && (*mtu < 68 || *mtu > wintun.PacketSizeMax) {
		return usageError{"create", fmt.Sprintf("--mtu %d: want 68 to %d", *mtu, wintun.PacketSizeMax)}
	}
	if err := checkIPv6MTU("create", *mtu, addrs, routes); err != nil {
		return err
	}
	opts := []wintun.Option{wintun.WithPersist()}
	if *mtu != 0 {
		opts = append(opts, wintun.WithMTU(*mtu))
	}
	if *owner != "" {
		uid, err := lookupID(*owner, false)
		if err != nil {
			return usageError{"create", "--owner: " + err.Error()}
		}
		opts = append(opts, wintun.WithOwner(uid))
	}
	if *group != "" {
		gid, err := lookupID(*group, true)
		if err != nil {
			return usageError{"create", "--group: " + err.Error()}
		}
		opts = append(opts, wintun.WithGroup(gid))
	}
	rootTodo := fmt.Sprintf("run `sudo wintun create %s ...`; to let a user start sessions on it without root, "+
		"add --owner USER or --group GROUP", name)
	if err := requireCapNetAdmin("create", "creating an adapter", rootTodo); err != nil {
		return err
	}

	a, err := wintun.CreateAdapter(name, *tunnelType, guid, opts...)
	if err != nil {
		return createError(name, rootTodo, err)
	}
	defer a.Close() // a persistent adapter's handle: the adapter stays
	configure := func() error {
		for _, p := range addrs {
			if err := a.AddAddress(p); err != nil {
				return configError("create", a, "address", p, err)
			}
		}
		for _, p := range routes {
			if err := a.AddRoute(p); err != nil {
				return configError("create", a, "route", p, err)
			}
		}
		return nil
	}
	if err := configure(); err != nil {
		// Half-configured adapters are worse than none: take it away again.
		if link, lerr := netlink.LinkByIndex(a.Index()); lerr == nil {
			netlink.LinkDel(link)
		}
		return fmt.Errorf("%w (adapter %s removed again)", err, name)
	}
	fmt.Fprintf(out, "created adapter %s: index %d, LUID %#x, GUID %v, type %q\n",
		name, a.Index(), a.LUID(), a.GUID(), a.TunnelType())
	if len(addrs) > 0 {
		fmt.Fprintf(out, "  addresses %v\n", prefixStrings(addrs))
	}
	if len(routes) > 0 {
		fmt.Fprintf(out, "  routes %v\n", prefixStrings(routes))
	}
	if *owner != "" || *group != "" {
		fmt.Fprintf(out, "  sessions allowed without CAP_NET_ADMIN for %s\n", ownerText(*owner, *group))
	}
	fmt.Fprintf(out, "  persistent: remove it with `wintun delete %s`\n", name)
	return nil
}

// createError says what to do when the adapter could not be created.
func createError(name, rootTodo string, err error) error {
	switch {
	case errors.Is(err, fs.ErrExist):
		if a, oerr := wintun.OpenAdapter(name); oerr == nil {
			a.Close() // an opened handle: releases nothing but itself
			return userErrorf(err, "wintun create: adapter %s exists already: use it, pick another name, "+
				"or delete it with `wintun delete %s`", name, name)
		}
		return userErrorf(err, "wintun create: interface %s exists already and is not one of wintun's adapters: "+
			"pick another name (`ip link` lists the interfaces)", name)
	case errors.Is(err, os.ErrPermission):
		return needRoot("create", "creating an adapter", rootTodo, err)
	}
	return err
}

// ownerText says who may start sessions without CAP_NET_ADMIN, as the kernel decides
// it (tun_not_capable in drivers/net/tun.c): an owner and a group both apply.
func ownerText(owner, group string) string {
	switch {
	case owner != "" && group != "":
		return "only user " + owner + ", and only while in group " + group +
			" (with both set, a user must be the owner and in the group)"
	case owner != "":
		return "only user " + owner
	}
	return "members of group " + group
}

// lookupID resolves a user (or group) given by name or by number.
func lookupID(s string, isGroup bool) (int, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		if n == 0xFFFFFFFF {
			return 0, errors.New("id 4294967295 is the kernel's \"no id\"")
		}
		return int(n), nil
	}
	var id string
	if isGroup {
		g, err := user.LookupGroup(s)
		if err != nil {
			return 0, fmt.Errorf("%w: give an existing group name or a number", err)
		}
		id = g.Gid
	} else {
		u, err := user.Lookup(s)
		if err != nil {
			return 0, fmt.Errorf("%w: give an existing user name or a number", err)
		}
		id = u.Uid
	}
	n, err := strconv.Atoi(id)
	if err != nil {
		return 0, fmt.Errorf("id %q of %q is not a number", id, s)
	}
	return n, nil
}
