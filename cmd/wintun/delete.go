//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vishvananda/netlink"
)

const deleteUsage = `usage: wintun delete NAME [--force]

Deletes adapter NAME, which must have been created by wintun (other interfaces are
refused). An adapter in use, with sessions attached or held by the running process that
created it (as ` + "`wintun pipe`" + ` holds the adapters it creates), is left alone unless
--force: its sessions then end. Needs CAP_NET_ADMIN.

`

func cmdDelete(out io.Writer, args []string) error {
	c := newCommand("delete", deleteUsage, out)
	force := c.Bool("force", false, "delete even an adapter in use: its sessions end")
	pos, err := c.parseArgs(args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if err := checkName("delete", name); err != nil {
		return err
	}
	rootTodo := fmt.Sprintf("run `sudo wintun delete %s`", name)
	if err := requireCapNetAdmin("delete", "deleting an adapter", rootTodo); err != nil {
		return err
	}
	info, err := inspect(name) // refuses interfaces wintun did not create
	if err != nil {
		return lookupError("delete", name, err)
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
	if errors.Is(err, os.ErrPermission) {
		return needRoot("delete", "deleting an adapter", rootTodo, err)
	}
	if err != nil {
		return fmt.Errorf("wintun delete: adapter %s: %w", name, err)
	}
	fmt.Fprintf(out, "deleted adapter %s\n", name)
	return nil
}
