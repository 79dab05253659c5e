//go:build linux

package main

import (
	"fmt"
	"io"

	"github.com/vishvananda/netlink"
)

const deleteUsage = `usage: wintun delete NAME [--force]

Deletes adapter NAME, which must have been created by this library (other interfaces are
refused). An adapter in use, with sessions attached or held by the process that created
it without --persist, is left alone unless --force: its sessions then end.
Needs CAP_NET_ADMIN.

`

func cmdDelete(out io.Writer, args []string) error {
	fs := newFlagSet("delete", deleteUsage, out)
	force := fs.Bool("force", false, "delete even an adapter in use")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if err := checkName("delete", name); err != nil {
		return err
	}
	if err := requireCapNetAdmin("delete", name); err != nil {
		return err
	}
	info, err := inspect(name) // refuses interfaces this library did not create
	if err != nil {
		return hint("delete", name, err)
	}
	if !*force && (info.Sessions > 0 || !info.Persistent) {
		why := fmt.Sprintf("%d session(s) attached", info.Sessions)
		if !info.Persistent {
			why = "its creating process is still running"
		}
		return fmt.Errorf("wintun delete: adapter %s is in use (%s): stop the program using it, or run `wintun delete %s --force`",
			name, why, name)
	}
	link, err := netlink.LinkByIndex(info.Index)
	if err == nil && link.Attrs().Name != name {
		err = fmt.Errorf("interface index %d is now %q", info.Index, link.Attrs().Name)
	}
	if err == nil {
		err = netlink.LinkDel(link)
	}
	if err != nil {
		return privilegeHint("delete", name, fmt.Errorf("wintun delete: adapter %s: %w", name, err))
	}
	fmt.Fprintf(out, "deleted adapter %s\n", name)
	return nil
}
