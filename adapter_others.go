//go:build !linux && !windows

package wintun

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
)

// The library drives the kernel's tun driver on Linux and wintun.dll on Windows. Other
// systems get the same API so that programs which import it (through wgtun, say) still
// build there, and find out at run time: every call that returns an error returns one
// satisfying errors.Is(err, errors.ErrUnsupported).

// unsupported reports that op has no implementation on this operating system.
func unsupported(op string) error {
	return fmt.Errorf("wintun: %s: %w on %s (the library runs on Linux and Windows)", op, errors.ErrUnsupported, runtime.GOOS)
}

// Adapter is a layer 3 virtual network card. This operating system has no
// implementation: CreateAdapter and OpenAdapter never return one, and the methods of
// the zero value report errors.ErrUnsupported.
type Adapter struct {
	_ struct{}
}

// CreateAdapter creates an adapter. On this operating system it returns an error that
// satisfies errors.Is(err, errors.ErrUnsupported).
func CreateAdapter(name, tunnelType string, requestedGUID *GUID, opts ...Option) (*Adapter, error) {
	return nil, unsupported("create adapter")
}

// OpenAdapter opens an existing adapter. On this operating system it returns an error
// that satisfies errors.Is(err, errors.ErrUnsupported).
func OpenAdapter(name string) (*Adapter, error) {
	return nil, unsupported("open adapter")
}

// Close releases the handle. On this operating system it returns an error that
// satisfies errors.Is(err, errors.ErrUnsupported).
func (a *Adapter) Close() error { return unsupported("close adapter") }

// Name returns the adapter's name; empty on this operating system.
func (a *Adapter) Name() string { return "" }

// TunnelType returns the tunnel type recorded at creation; empty on this operating
// system.
func (a *Adapter) TunnelType() string { return "" }

// GUID returns the adapter's stable identity; zero on this operating system.
func (a *Adapter) GUID() GUID { return GUID{} }

// Index returns the interface index; zero on this operating system.
func (a *Adapter) Index() int { return 0 }

// LUID returns the adapter's locally unique id; zero on this operating system.
func (a *Adapter) LUID() uint64 { return 0 }

// Stats returns the counters of the handle's sessions; zero on this operating system.
func (a *Adapter) Stats() Stats { return Stats{} }

// MTU returns the adapter's MTU. On this operating system it returns an error that
// satisfies errors.Is(err, errors.ErrUnsupported).
func (a *Adapter) MTU() (int, error) { return 0, unsupported("MTU") }

// SetMTU sets the adapter's MTU. On this operating system it returns an error that
// satisfies errors.Is(err, errors.ErrUnsupported).
func (a *Adapter) SetMTU(mtu int) error { return unsupported("set MTU") }

// AddAddress adds an address to the adapter. On this operating system it returns an
// error that satisfies errors.Is(err, errors.ErrUnsupported).
func (a *Adapter) AddAddress(p netip.Prefix) error { return unsupported("add address") }

// RemoveAddress removes an address from the adapter. On this operating system it
// returns an error that satisfies errors.Is(err, errors.ErrUnsupported).
func (a *Adapter) RemoveAddress(p netip.Prefix) error { return unsupported("remove address") }

// Addresses returns the adapter's addresses. On this operating system it returns an
// error that satisfies errors.Is(err, errors.ErrUnsupported).
func (a *Adapter) Addresses() ([]netip.Prefix, error) { return nil, unsupported("addresses") }

// AddRoute routes a network through the adapter. On this operating system it returns
// an error that satisfies errors.Is(err, errors.ErrUnsupported).
func (a *Adapter) AddRoute(p netip.Prefix) error { return unsupported("add route") }

// RemoveRoute removes a route added with AddRoute. On this operating system it returns
// an error that satisfies errors.Is(err, errors.ErrUnsupported).
func (a *Adapter) RemoveRoute(p netip.Prefix) error { return unsupported("remove route") }

// Uninstall removes the library's unused adapters. On this operating system it returns
// an error that satisfies errors.Is(err, errors.ErrUnsupported).
func Uninstall() error { return unsupported("uninstall") }

// UninstallReport is Uninstall that says what it did. On this operating system it
// returns an error that satisfies errors.Is(err, errors.ErrUnsupported).
func UninstallReport() (removed, inUse []string, err error) {
	return nil, nil, unsupported("uninstall")
}

// RunningVersion returns the version of the driver. On this operating system it
// returns an error that satisfies errors.Is(err, errors.ErrUnsupported).
func RunningVersion() (uint32, error) { return 0, unsupported("running version") }
