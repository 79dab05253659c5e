package wintun

// Adapter configuration through golang.zx2c4.com/wireguard/windows/tunnel/winipcfg, the
// IP helper binding of WireGuard for Windows: generated system call stubs that keep
// every pointer alive across the call, row layouts checked for 32- and 64-bit Windows,
// and LUID-based calls.

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/windows"
	"golang.zx2c4.com/wireguard/windows/tunnel/winipcfg"
)

const (
	// familyDeadline bounds the wait for a new adapter's first IP interface, as
	// WireGuard for Windows' watchdog does.
	familyDeadline = time.Minute
	// familyGrace bounds the wait for the second family once the first is there.
	familyGrace = 5 * time.Second
)

// aliasExists reports whether an interface is named name. Windows compares aliases
// without regard to case.
func aliasExists(name string) (bool, error) {
	rows, err := winipcfg.GetIfTable2Ex(winipcfg.MibIfEntryNormalWithoutStatistics)
	if err != nil {
		return false, err
	}
	for i := range rows {
		if strings.EqualFold(rows[i].Alias(), name) {
			return true, nil
		}
	}
	return false, nil
}

// familyWatch follows the IP interfaces of one adapter: registered before the adapter
// exists, so that no arrival is missed, it signals changed on every arrival of an
// interface and, once started, configures each family of the adapter that arrives
// (after CreateAdapter returned without it).
type familyWatch struct {
	cb       *winipcfg.InterfaceChangeCallback
	stopOnce sync.Once
	changed  chan struct{}
	mtu      atomic.Int64 // the MTU a late family gets (0: Windows' default)

	started   chan struct{} // closed by start, after luid and configure are set
	luid      winipcfg.LUID
	configure func(family uint16)
}

func watchFamilies() (*familyWatch, error) {
	w := &familyWatch{changed: make(chan struct{}, 1), started: make(chan struct{})}
	cb, err := winipcfg.RegisterInterfaceChangeCallback(func(kind winipcfg.MibNotificationType, row *winipcfg.MibIPInterfaceRow) {
		if kind != winipcfg.MibAddInstance {
			return
		}
		select {
		case w.changed <- struct{}{}:
		default:
		}
		select {
		case <-w.started:
			if row.InterfaceLUID == w.luid {
				w.configure(uint16(row.Family))
			}
		default: // the creator is still waiting and checks every family itself
		}
	})
	if err != nil {
		return nil, fmt.Errorf("interface-change notifications: %w", err)
	}
	w.cb = cb
	return w, nil
}

// start makes the callback configure the families of luid that arrive from now on,
// and configures those of missing that arrived since the wait ended.
func (w *familyWatch) start(luid winipcfg.LUID, missing []uint16, configure func(family uint16)) {
	w.luid, w.configure = luid, configure
	close(w.started)
	for _, f := range missing {
		if hasFamily(luid, f) {
			configure(f)
		}
	}
}

// stop unregisters the callback; it returns once no call of it runs. It is
// idempotent: Close and the cleanup of an unreachable Adapter may both call it.
func (w *familyWatch) stop() {
	w.stopOnce.Do(func() { w.cb.Unregister() })
}

// hasFamily reports whether the adapter's interface of that family exists.
func hasFamily(luid winipcfg.LUID, family uint16) bool {
	_, err := luid.IPInterface(winipcfg.AddressFamily(family))
	return err == nil
}

// expectedFamilies returns the families a new adapter gets interfaces of: those that
// some interface other than loopback has. The loopback interface keeps IPv6 even
// where IPv6 is disabled for every other interface (DisabledComponents), and waiting
// for an IPv6 interface that never comes would cost every creation its grace time.
// On a machine whose only interface is loopback, its families are the answer.
func expectedFamilies() []uint16 {
	var out, withLoopback []uint16
	for _, f := range []uint16{winAFInet, winAFInet6} {
		rows, err := winipcfg.GetIPInterfaceTable(winipcfg.AddressFamily(f))
		if err != nil || len(rows) == 0 {
			continue
		}
		withLoopback = append(withLoopback, f)
		for _, r := range rows {
			if uint64(r.InterfaceLUID)>>48 != winIfTypeSoftwareLoopback {
				out = append(out, f)
				break
			}
		}
	}
	if len(out) == 0 {
		return withLoopback
	}
	return out
}

// winIfTypeSoftwareLoopback is IF_TYPE_SOFTWARE_LOOPBACK, the interface type in the top
// 16 bits of a loopback interface's LUID.
const winIfTypeSoftwareLoopback = 24

// awaitInterfaces waits for the new adapter's IP interfaces and returns the families
// present. Windows creates them some time after WintunCreateAdapter returns; none
// after familyDeadline is an error, as in WireGuard for Windows.
func (w *familyWatch) awaitInterfaces(luid winipcfg.LUID) ([]uint16, error) {
	want := expectedFamilies()
	if len(want) == 0 {
		return nil, errors.New("neither IPv4 nor IPv6 runs on this system")
	}
	deadline := time.NewTimer(familyDeadline)
	defer deadline.Stop()
	var grace *time.Timer
	defer func() {
		if grace != nil {
			grace.Stop()
		}
	}()
	got := awaitFamilies(want, func(f uint16) bool { return hasFamily(luid, f) }, w.changed, deadline.C,
		func() <-chan time.Time {
			grace = time.NewTimer(familyGrace)
			return grace.C
		})
	if len(got) == 0 {
		return nil, fmt.Errorf("no IP interface appeared within %v", familyDeadline)
	}
	return got, nil
}

// configureFamily applies the settings of a point-to-point layer 3 link to the
// adapter's interface of one family, as WireGuard for Windows does: no duplicate
// address detection (no neighbours to ask, and addresses are usable at once), no
// router discovery or DHCPv6 (nobody answers), and mtu if not zero (for IPv6 only
// from its minimum of 1280).
func configureFamily(luid winipcfg.LUID, family uint16, mtu int) error {
	row, err := luid.IPInterface(winipcfg.AddressFamily(family))
	if err != nil {
		return err
	}
	row.DadTransmits = 0
	row.RouterDiscoveryBehavior = winipcfg.RouterDiscoveryDisabled
	row.ManagedAddressConfigurationSupported = false
	row.OtherStatefulConfigurationSupported = false
	if mtu != 0 && (family == winAFInet || mtu >= 1280) {
		row.NLMTU = uint32(mtu)
	}
	return row.Set()
}

// flush removes the adapter's routes and addresses, which WireGuard for Windows does
// before removing an adapter: the network stack does not cope well with removing an
// interface that still has active routes. Failures are logged; removal goes on.
func (a *Adapter) flush() {
	luid := a.winLUID()
	for _, f := range []winipcfg.AddressFamily{windows.AF_INET, windows.AF_INET6} {
		if err := luid.FlushRoutes(f); err != nil {
			logWarn("wintun: flushing routes before removal", "name", a.name, "family", familyName(uint16(f)), "err", err)
		}
		if err := luid.FlushIPAddresses(f); err != nil {
			logWarn("wintun: flushing addresses before removal", "name", a.name, "family", familyName(uint16(f)), "err", err)
		}
	}
}

func (a *Adapter) winLUID() winipcfg.LUID { return winipcfg.LUID(a.luid) }

// MTU returns the adapter's current IPv4 MTU (its IPv6 MTU if IPv4 is not bound).
func (a *Adapter) MTU() (int, error) {
	row, err := a.winLUID().IPInterface(windows.AF_INET)
	if err != nil {
		row, err = a.winLUID().IPInterface(windows.AF_INET6)
	}
	if err != nil {
		return 0, mapWinError(fmt.Sprintf("MTU of %q", a.name), err)
	}
	return int(row.NLMTU), nil
}

// SetMTU sets the adapter's MTU, from 68 to PacketSizeMax, for IPv4 and, when it is
// at least 1280 (IPv6's minimum), for IPv6; a family not bound to the adapter is
// skipped.
func (a *Adapter) SetMTU(mtu int) error {
	if mtu < 68 || mtu > PacketSizeMax {
		return fmt.Errorf("wintun: invalid MTU %d: want 68 to %d", mtu, PacketSizeMax)
	}
	done := 0
	for _, family := range []winipcfg.AddressFamily{windows.AF_INET, windows.AF_INET6} {
		if family == windows.AF_INET6 && mtu < 1280 {
			continue
		}
		row, err := a.winLUID().IPInterface(family)
		if errors.Is(err, windows.ERROR_NOT_FOUND) {
			continue
		}
		if err == nil {
			row.NLMTU = uint32(mtu)
			err = row.Set()
		}
		if err != nil {
			return mapWinError(fmt.Sprintf("set MTU of %q", a.name), err)
		}
		done++
	}
	if done == 0 {
		return fmt.Errorf("wintun: set MTU of %q: neither IPv4 nor IPv6 is bound to the adapter", a.name)
	}
	if a.watch != nil {
		a.watch.mtu.Store(int64(mtu))
	}
	return nil
}

// AddAddress gives the system side of the adapter the address p.Addr() on the network
// p; an address already there gives an error satisfying errors.Is(err, fs.ErrExist).
// The address is created in the preferred state, skipping duplicate address detection
// (a layer 3 link has no neighbours to ask), so it is usable at once. An IPv4-mapped
// IPv6 prefix is taken as the IPv4 prefix it maps. If the address is held by another
// interface that is not up (left behind by a program that crashed), it is removed
// there and added here, as WireGuard for Windows does.
func (a *Adapter) AddAddress(p netip.Prefix) error {
	p, err := plainPrefix(p)
	if err != nil {
		return err
	}
	luid := a.winLUID()
	err = luid.AddIPAddress(p)
	if errors.Is(err, windows.ERROR_OBJECT_ALREADY_EXISTS) && a.removeStaleAddress(p.Addr()) {
		err = luid.AddIPAddress(p)
	}
	return mapWinError(fmt.Sprintf("add address %v to %q", p, a.name), err)
}

// removeStaleAddress removes addr from the interfaces other than the adapter that are
// not up, and reports whether it removed any.
func (a *Adapter) removeStaleAddress(addr netip.Addr) bool {
	rows, err := winipcfg.GetUnicastIPAddressTable(windows.AF_UNSPEC)
	if err != nil {
		return false
	}
	removed := false
	for i := range rows {
		row := &rows[i]
		if row.InterfaceLUID == a.winLUID() || row.Address.Addr().WithZone("") != addr {
			continue
		}
		iface, err := row.InterfaceLUID.Interface()
		if err != nil || iface.OperStatus == winipcfg.IfOperStatusUp {
			continue
		}
		if err := row.Delete(); err == nil {
			logInfo("wintun: removed a stale address from a disconnected interface", "address", addr, "interface", iface.Alias())
			removed = true
		}
	}
	return removed
}

// RemoveAddress removes an address added with AddAddress.
func (a *Adapter) RemoveAddress(p netip.Prefix) error {
	p, err := plainPrefix(p)
	if err != nil {
		return err
	}
	return mapWinError(fmt.Sprintf("remove address %v from %q", p, a.name), a.winLUID().DeleteIPAddress(p))
}

// Addresses returns the adapter's IPv4 and IPv6 addresses with their prefix lengths.
func (a *Adapter) Addresses() ([]netip.Prefix, error) {
	rows, err := winipcfg.GetUnicastIPAddressTable(windows.AF_UNSPEC)
	if err != nil {
		return nil, mapWinError(fmt.Sprintf("addresses of %q", a.name), err)
	}
	var out []netip.Prefix
	for i := range rows {
		if rows[i].InterfaceLUID != a.winLUID() {
			continue
		}
		if ip := rows[i].Address.Addr(); ip.IsValid() {
			out = append(out, netip.PrefixFrom(ip.WithZone(""), int(rows[i].OnLinkPrefixLength)))
		}
	}
	return out, nil
}

// AddRoute routes the network p through the adapter: an on-link route (the next hop
// is the unspecified address of p's family) with metric 0, so that only the
// interface's metric counts. An IPv4-mapped IPv6 prefix is taken as the IPv4 prefix
// it maps.
func (a *Adapter) AddRoute(p netip.Prefix) error {
	p, err := plainPrefix(p)
	if err != nil {
		return err
	}
	p = p.Masked()
	return mapWinError(fmt.Sprintf("add route %v via %q", p, a.name), a.winLUID().AddRoute(p, unspecifiedFor(p.Addr()), 0))
}

// RemoveRoute removes a route added with AddRoute.
func (a *Adapter) RemoveRoute(p netip.Prefix) error {
	p, err := plainPrefix(p)
	if err != nil {
		return err
	}
	p = p.Masked()
	return mapWinError(fmt.Sprintf("remove route %v via %q", p, a.name), a.winLUID().DeleteRoute(p, unspecifiedFor(p.Addr())))
}

// driverStats reads the driver's counters from the adapter's MIB_IF_ROW2.
func (a *Adapter) driverStats() (driverCounters, error) {
	row, err := a.winLUID().Interface()
	if err != nil {
		return driverCounters{}, err
	}
	return driverCounters{inDiscards: row.InDiscards, inErrors: row.InErrors, outDiscards: row.OutDiscards}, nil
}
