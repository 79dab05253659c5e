package wgtun

import (
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// startMonitor subscribes to link updates and starts the goroutine that turns the
// adapter's into tun events. The netlink socket is opened here, by the caller's thread,
// so it watches the caller's network namespace, where the adapter is.
func (d *Device) startMonitor() error {
	updates := make(chan netlink.LinkUpdate, 16)
	stop := make(chan struct{})
	// ListExisting makes the kernel send the current state first, through the same
	// socket, so no change between reading the state and subscribing can be missed.
	err := netlink.LinkSubscribeWithOptions(updates, stop, netlink.LinkSubscribeOptions{ListExisting: true})
	if err != nil {
		close(stop) // ends the helper goroutine netlink may have started
		return err
	}
	go d.monitor(updates, stop)
	return nil
}

// monitor emits EventUp when the link is up and running (IFF_RUNNING: up, with the
// carrier on while a session runs), EventDown when it stops running or leaves the
// namespace after having been up, and EventMTUUpdate when the MTU changes. On Close it
// closes the netlink socket (stop) and drains updates until netlink's goroutine closes
// it, so that no goroutine is left blocked on a send.
func (d *Device) monitor(updates <-chan netlink.LinkUpdate, stop chan struct{}) {
	defer close(d.monitorDone)
	defer close(d.events)
	index := int32(d.adapter.Index())
	wasUp := false
	emit := func(e tun.Event) {
		select {
		case d.events <- e:
		case <-d.done:
		}
	}
	for {
		select {
		case <-d.done:
			close(stop) // closes the socket: netlink's reader fails and closes updates
			for range updates {
			}
			return
		case u, ok := <-updates:
			if !ok {
				// The socket failed: no more link events, while Read and Write go on.
				<-d.done
				close(stop)
				return
			}
			if u.Index != index {
				continue
			}
			if u.Header.Type == unix.RTM_DELLINK {
				if wasUp {
					wasUp = false
					emit(tun.EventDown)
				}
				continue
			}
			attrs := u.Link.Attrs()
			if attrs.Name != "" && attrs.Name != *d.name.Load() {
				name := attrs.Name
				d.name.Store(&name)
			}
			if attrs.MTU > 0 && int64(attrs.MTU) != d.mtu.Load() {
				d.mtu.Store(int64(attrs.MTU))
				emit(tun.EventMTUUpdate)
			}
			running := u.Flags&unix.IFF_RUNNING != 0
			switch {
			case running && !wasUp:
				wasUp = true
				emit(tun.EventUp)
			case !running && wasUp:
				wasUp = false
				emit(tun.EventDown)
			}
		}
	}
}
