//go:build !linux && !windows

package wgtun

import "golang.zx2c4.com/wireguard/tun"

// startMonitor reports the link up once: without a link monitor on this platform,
// MTU changes and later state changes are not reported.
func (d *Device) startMonitor() error {
	d.events <- tun.EventUp
	go func() {
		defer close(d.monitorDone)
		<-d.done
		close(d.events)
	}()
	return nil
}
