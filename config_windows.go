package wintun

// Adapter configuration through the IP helper API (iphlpapi.dll), by the adapter's
// LUID. golang.org/x/sys/windows has the row types and the Get calls; the calls that
// change something are loaded here.

import (
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	iphlpapi                            = windows.NewLazySystemDLL("iphlpapi.dll")
	procSetIpInterfaceEntry             = iphlpapi.NewProc("SetIpInterfaceEntry")
	procInitializeUnicastIpAddressEntry = iphlpapi.NewProc("InitializeUnicastIpAddressEntry")
	procCreateUnicastIpAddressEntry     = iphlpapi.NewProc("CreateUnicastIpAddressEntry")
	procDeleteUnicastIpAddressEntry     = iphlpapi.NewProc("DeleteUnicastIpAddressEntry")
	procInitializeIpForwardEntry        = iphlpapi.NewProc("InitializeIpForwardEntry")
	procCreateIpForwardEntry2           = iphlpapi.NewProc("CreateIpForwardEntry2")
	procDeleteIpForwardEntry2           = iphlpapi.NewProc("DeleteIpForwardEntry2")
	procConvertInterfaceLuidToIndex     = iphlpapi.NewProc("ConvertInterfaceLuidToIndex")
	procConvertInterfaceAliasToLuid     = iphlpapi.NewProc("ConvertInterfaceAliasToLuid")
)

// netio calls an IP helper function that returns its NETIO_STATUS (a Windows error
// number) directly. Find first: LazyProc.Call panics on a missing export.
func netio(p *windows.LazyProc, args ...uintptr) error {
	if err := p.Find(); err != nil {
		return err
	}
	r, _, _ := p.Call(args...)
	if r != 0 {
		return syscall.Errno(r)
	}
	return nil
}

// luidToIndex returns the interface index of the interface with that LUID.
func luidToIndex(luid uint64) (int, error) {
	var index uint32
	if err := netio(procConvertInterfaceLuidToIndex, uintptr(unsafe.Pointer(&luid)), uintptr(unsafe.Pointer(&index))); err != nil {
		return 0, err
	}
	return int(index), nil
}

// aliasExists reports whether an interface is named name.
func aliasExists(name string) bool {
	alias, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return false
	}
	var luid uint64
	return netio(procConvertInterfaceAliasToLuid, uintptr(unsafe.Pointer(alias)), uintptr(unsafe.Pointer(&luid))) == nil
}

// ipInterface reads the IPv4 or IPv6 settings of the adapter.
func (a *Adapter) ipInterface(family uint16) (*windows.MibIpInterfaceRow, error) {
	row := &windows.MibIpInterfaceRow{Family: family, InterfaceLuid: a.luid}
	if err := windows.GetIpInterfaceEntry(row); err != nil {
		return nil, err
	}
	return row, nil
}

// MTU returns the adapter's current IPv4 MTU (its IPv6 MTU if IPv4 is not bound).
func (a *Adapter) MTU() (int, error) {
	row, err := a.ipInterface(winAFInet)
	if err != nil {
		row, err = a.ipInterface(winAFInet6)
	}
	if err != nil {
		return 0, mapWinError(fmt.Sprintf("MTU of %q", a.name), err)
	}
	return int(row.NlMtu), nil
}

// SetMTU sets the adapter's MTU, from 68 to PacketSizeMax, for IPv4 and, when it is
// at least 1280 (IPv6's minimum), for IPv6; a family not bound to the adapter is
// skipped.
func (a *Adapter) SetMTU(mtu int) error {
	if mtu < 68 || mtu > PacketSizeMax {
		return fmt.Errorf("wintun: invalid MTU %d: want 68 to %d", mtu, PacketSizeMax)
	}
	done := 0
	for _, family := range []uint16{winAFInet, winAFInet6} {
		if family == winAFInet6 && mtu < 1280 {
			continue
		}
		row, err := a.ipInterface(family)
		if err == windows.ERROR_NOT_FOUND {
			continue
		}
		if err == nil {
			row.NlMtu = uint32(mtu)
			// GetIpInterfaceEntry returns a SitePrefixLength that SetIpInterfaceEntry
			// refuses (ERROR_INVALID_PARAMETER); IPv4 has no site prefix.
			if family == winAFInet {
				row.SitePrefixLength = 0
			} else if row.SitePrefixLength > 128 {
				row.SitePrefixLength = 128
			}
			err = netio(procSetIpInterfaceEntry, uintptr(unsafe.Pointer(row)))
		}
		if err != nil {
			return mapWinError(fmt.Sprintf("set MTU of %q", a.name), err)
		}
		done++
	}
	if done == 0 {
		return fmt.Errorf("wintun: set MTU of %q: neither IPv4 nor IPv6 is bound to the adapter", a.name)
	}
	return nil
}

func checkPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("wintun: invalid prefix %v", p)
	}
	return nil
}

// unicastRow is the IP helper's row for address p.Addr() on the adapter.
func (a *Adapter) unicastRow(p netip.Prefix) (*windows.MibUnicastIpAddressRow, error) {
	row := &windows.MibUnicastIpAddressRow{}
	if err := procInitializeUnicastIpAddressEntry.Find(); err != nil {
		return nil, err
	}
	procInitializeUnicastIpAddressEntry.Call(uintptr(unsafe.Pointer(row)))
	row.InterfaceLuid = a.luid
	if err := (*sockaddrInet)(unsafe.Pointer(&row.Address)).putAddr(p.Addr()); err != nil {
		return nil, err
	}
	row.OnLinkPrefixLength = uint8(p.Bits())
	return row, nil
}

// AddAddress gives the system side of the adapter the address p.Addr() on the network
// p; an address already there gives an error satisfying errors.Is(err, fs.ErrExist).
// The address is created in the preferred state, skipping duplicate address detection
// (a layer 3 link has no neighbours to ask), so it is usable at once.
func (a *Adapter) AddAddress(p netip.Prefix) error {
	if err := checkPrefix(p); err != nil {
		return err
	}
	row, err := a.unicastRow(p)
	if err == nil {
		const ipDadStatePreferred = 4
		row.DadState = ipDadStatePreferred
		row.ValidLifetime, row.PreferredLifetime = 0xFFFFFFFF, 0xFFFFFFFF // infinite
		err = netio(procCreateUnicastIpAddressEntry, uintptr(unsafe.Pointer(row)))
	}
	return mapWinError(fmt.Sprintf("add address %v to %q", p, a.name), err)
}

// RemoveAddress removes an address added with AddAddress.
func (a *Adapter) RemoveAddress(p netip.Prefix) error {
	if err := checkPrefix(p); err != nil {
		return err
	}
	row, err := a.unicastRow(p)
	if err == nil {
		err = netio(procDeleteUnicastIpAddressEntry, uintptr(unsafe.Pointer(row)))
	}
	return mapWinError(fmt.Sprintf("remove address %v from %q", p, a.name), err)
}

// Addresses returns the adapter's IPv4 and IPv6 addresses with their prefix lengths.
func (a *Adapter) Addresses() ([]netip.Prefix, error) {
	var table *windows.MibUnicastIpAddressTable
	if err := windows.GetUnicastIpAddressTable(winAFUnspec, &table); err != nil {
		return nil, mapWinError(fmt.Sprintf("addresses of %q", a.name), err)
	}
	defer windows.FreeMibTable(unsafe.Pointer(table))
	rows := unsafe.Slice(&table.Table[0], table.NumEntries)
	var out []netip.Prefix
	for i := range rows {
		if rows[i].InterfaceLuid != a.luid {
			continue
		}
		if ip, ok := (*sockaddrInet)(unsafe.Pointer(&rows[i].Address)).addr(); ok {
			out = append(out, netip.PrefixFrom(ip, int(rows[i].OnLinkPrefixLength)))
		}
	}
	return out, nil
}

// routeRow is the IP helper's row for an on-link route to p through the adapter: the
// next hop is the unspecified address of p's family.
func (a *Adapter) routeRow(p netip.Prefix) (*windows.MibIpForwardRow2, error) {
	if err := checkPrefix(p); err != nil {
		return nil, err
	}
	p = p.Masked()
	row := &windows.MibIpForwardRow2{}
	if err := procInitializeIpForwardEntry.Find(); err != nil {
		return nil, err
	}
	procInitializeIpForwardEntry.Call(uintptr(unsafe.Pointer(row)))
	row.InterfaceLuid = a.luid
	if err := (*sockaddrInet)(unsafe.Pointer(&row.DestinationPrefix.Prefix)).putAddr(p.Addr()); err != nil {
		return nil, err
	}
	row.DestinationPrefix.PrefixLength = uint8(p.Bits())
	unspecified := netip.IPv4Unspecified()
	if winFamily(p.Addr()) == winAFInet6 {
		unspecified = netip.IPv6Unspecified()
	}
	if err := (*sockaddrInet)(unsafe.Pointer(&row.NextHop)).putAddr(unspecified); err != nil {
		return nil, err
	}
	row.Metric = 0 // only the interface's metric counts
	return row, nil
}

// AddRoute routes the network p through the adapter.
func (a *Adapter) AddRoute(p netip.Prefix) error {
	row, err := a.routeRow(p)
	if err == nil {
		err = netio(procCreateIpForwardEntry2, uintptr(unsafe.Pointer(row)))
	}
	return mapWinError(fmt.Sprintf("add route %v via %q", p, a.name), err)
}

// RemoveRoute removes a route added with AddRoute.
func (a *Adapter) RemoveRoute(p netip.Prefix) error {
	row, err := a.routeRow(p)
	if err == nil {
		err = netio(procDeleteIpForwardEntry2, uintptr(unsafe.Pointer(row)))
	}
	return mapWinError(fmt.Sprintf("remove route %v via %q", p, a.name), err)
}
