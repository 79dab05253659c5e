package wgtun

import (
	"errors"

	"golang.org/x/sys/windows"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/windows/tunnel/winipcfg"
)

// startMonitor registers for interface-change notifications and starts the goroutine
// that turns the adapter's into tun events, as the netlink monitor does on Linux.
// Windows says that an IP interface changed (added, removed, a parameter such as the
// MTU or the connected state), not what; the monitor reads the adapter's state again.
func (d *Device) startMonitor() error {
	luid := winipcfg.LUID(d.adapter.LUID())
	kick := make(chan struct{}, 1)
	cb, err := winipcfg.RegisterInterfaceChangeCallback(func(_ winipcfg.MibNotificationType, row *winipcfg.MibIPInterfaceRow) {
		if row.InterfaceLUID != luid {
			return
		}
		select {
		case kick <- struct{}{}:
		default: // a re-read is pending already
		}
	})
	if err != nil {
		return err
	}
	go d.monitor(luid, cb, kick)
	return nil
}

// monitor emits EventUp at start, as wireguard-go's own Windows device does (the
// session that makes a Wintun adapter operationally up is running), then EventDown
// and EventUp as the adapter stops and starts being up (see linkState) or disappears,
// and EventMTUUpdate when its MTU changes. On Close it unregisters the callback, which
// returns once no call of it runs.
func (d *Device) monitor(luid winipcfg.LUID, cb *winipcfg.InterfaceChangeCallback, kick <-chan struct{}) {
	defer close(d.monitorDone)
	defer close(d.events)
	state := linkState{mtu: int(d.mtu.Load())}
	emit := func(events []tun.Event) {
		for _, e := range events {
			select {
			case d.events <- e:
			case <-d.done:
				return
			}
		}
	}
	check := func() {
		up, gone, mtu, name, err := readLink(luid)
		if err != nil && !gone {
			return // unreadable for now: the next notification reads again
		}
		if name != "" && name != *d.name.Load() {
			d.name.Store(&name)
		}
		events := state.update(up, gone, mtu)
		d.mtu.Store(int64(state.mtu))
		emit(events)
	}
	emit(state.start())
	check()
	for {
		select {
		case <-d.done:
			cb.Unregister()
			return
		case <-kick:
			check()
		}
	}
}

// readLink reads whether the adapter is operationally up, its MTU (IPv4's, else
// IPv6's; 0 if neither can be read) and its name, or that it is gone.
func readLink(luid winipcfg.LUID) (up, gone bool, mtu int, name string, err error) {
	iface, err := luid.Interface()
	if err != nil {
		gone = errors.Is(err, windows.ERROR_FILE_NOT_FOUND) || errors.Is(err, windows.ERROR_NOT_FOUND)
		return false, gone, 0, "", err
	}
	for _, f := range []winipcfg.AddressFamily{windows.AF_INET, windows.AF_INET6} {
		if row, err := luid.IPInterface(f); err == nil {
			mtu = int(row.NLMTU)
			break
		}
	}
	return iface.OperStatus == winipcfg.IfOperStatusUp, false, mtu, iface.Alias(), nil
}
