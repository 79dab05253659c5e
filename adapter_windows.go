package wintun

import (
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sys/windows"
	dll "golang.zx2c4.com/wintun"
	"golang.zx2c4.com/wireguard/windows/tunnel/winipcfg"
)

// Adapter is a layer 3 virtual network card: on Windows, a Wintun adapter of the
// official wintun.dll, which must sit next to the executable (see docs/windows.md).
//
// The handle returned by CreateAdapter owns the adapter: Close removes it, and so does
// the end of the creating process. A handle from OpenAdapter only gives access to it.
// Creating and opening adapters needs Administrator rights. The binding closes the
// handle of an Adapter that becomes unreachable without Close, which removes an adapter
// its creator forgot: keep the Adapter for as long as the adapter should exist.
//
// All methods are safe for concurrent use.
type Adapter struct {
	name       string
	tunnelType string
	guid       GUID
	luid       uint64
	index      int
	stats      stats

	mu       sync.Mutex
	closed   bool
	handle   *dll.Adapter
	sessions map[*Session]struct{}
	watch    *familyWatch // the creator's: configures a family that arrives late
}

// CreateAdapter creates a Wintun adapter named name (the connection name Windows
// shows). tunnelType becomes the adapter's description, and the GUID (random when
// requestedGUID is nil) its interface GUID, which Windows uses to recognize the network
// again. An existing interface of that name gives an error that satisfies
// errors.Is(err, fs.ErrExist).
//
// CreateAdapter returns once the adapter's IP interfaces exist, which Windows creates
// some time after the adapter: it waits up to a minute for the first of IPv4 and IPv6,
// then a few seconds for the other. Each is configured for a layer 3 link as WireGuard
// for Windows does (no duplicate address detection, no router discovery, the MTU of
// WithMTU); a family that arrives later (or never, when it is unbound from the
// adapter) is configured when it arrives, and until then AddAddress and AddRoute for
// it fail with an error satisfying errors.Is(err, fs.ErrNotExist).
//
// Of the options, WithMTU applies; WithPersist, WithOwner and WithGroup give an error
// satisfying errors.Is(err, errors.ErrUnsupported): Wintun removes an adapter with its
// creator's handle and lets only Administrators use it.
func CreateAdapter(name, tunnelType string, requestedGUID *GUID, opts ...Option) (*Adapter, error) {
	if err := checkWindowsName(name); err != nil {
		return nil, err
	}
	if err := checkTunnelType(tunnelType); err != nil {
		return nil, err
	}
	cfg, err := windowsConfig(opts)
	if err != nil {
		return nil, err
	}
	var guid GUID
	if requestedGUID != nil {
		guid = *requestedGUID
	} else if guid, err = newGUID(); err != nil {
		return nil, err
	}
	if err := loadDLL(); err != nil {
		return nil, err
	}
	// Given a name that another interface has, Wintun (api/adapter.c) renames that
	// interface and gives the name to the new adapter. Refuse instead, as on Linux, so
	// that no other program's interface changes name. This is a check before the
	// create, not part of it: an interface named so in between still loses its name.
	exists, err := aliasExists(name)
	if err != nil {
		return nil, mapWinError(fmt.Sprintf("create adapter %q: interface names", name), err)
	}
	if exists {
		return nil, fmt.Errorf("wintun: adapter %q: %w", name, fs.ErrExist)
	}
	// Registered before the adapter exists, so that the arrival of its IP interfaces
	// cannot be missed.
	watch, err := watchFamilies()
	if err != nil {
		return nil, fmt.Errorf("wintun: create adapter %q: %w", name, err)
	}
	wg := windows.GUID(toWinGUID(guid))
	var h *dll.Adapter
	err = guard("create adapter", func() (err error) {
		h, err = dll.CreateAdapter(name, tunnelType, &wg)
		return err
	})
	if err != nil {
		watch.stop()
		return nil, mapWinError(fmt.Sprintf("create adapter %q", name), err)
	}
	a := &Adapter{name: name, tunnelType: tunnelType, guid: guid, handle: h, sessions: map[*Session]struct{}{}}
	a.luid = h.LUID()
	fail := func(err error) (*Adapter, error) {
		watch.stop()
		h.Close() // the creator's handle: this removes the adapter
		return nil, err
	}
	row, err := a.winLUID().Interface()
	if err != nil {
		return fail(mapWinError(fmt.Sprintf("create adapter %q: interface entry", name), err))
	}
	a.index = int(row.InterfaceIndex)
	// When the name is held by a connection the pre-check cannot see (a device no
	// longer present) and that Windows will not rename, Wintun quietly gives the new
	// adapter the name with a suffix ("name 1"): refuse that, as an existing name.
	if alias := row.Alias(); alias != name {
		return fail(fmt.Errorf("wintun: adapter %q: Windows named it %q: the name is taken (a connection of a device no longer present?): %w", name, alias, fs.ErrExist))
	}
	present, err := watch.awaitInterfaces(a.winLUID())
	if err != nil {
		return fail(fmt.Errorf("wintun: create adapter %q: %w", name, err))
	}
	for _, f := range present {
		if err := configureFamily(a.winLUID(), f, cfg.mtu); err != nil {
			return fail(mapWinError(fmt.Sprintf("create adapter %q: configure %s", name, familyName(f)), err))
		}
	}
	var missing []uint16
	for _, f := range []uint16{winAFInet, winAFInet6} {
		if !slices.Contains(present, f) {
			missing = append(missing, f)
			logWarn("wintun: adapter created without an interface of one family; it is configured if it appears", "name", name, "family", familyName(f))
		}
	}
	// The callback must not hold a: the binding removes the adapter of an unreachable
	// handle, and a registered callback is always reachable.
	watch.mtu.Store(int64(cfg.mtu))
	luid := a.winLUID()
	watch.start(luid, missing, func(f uint16) {
		if err := configureFamily(luid, f, int(watch.mtu.Load())); err != nil {
			logWarn("wintun: configuring a late interface failed", "name", name, "family", familyName(f), "err", err)
		}
	})
	a.watch = watch
	runtime.AddCleanup(a, func(w *familyWatch) { w.stop() }, watch)
	logInfo("wintun: adapter created", "name", name, "index", a.index, "luid", a.luid, "guid", guid.String(), "type", tunnelType)
	return a, nil
}

// OpenAdapter opens an existing Wintun adapter by name. wintun.dll opens only Wintun
// adapters, so another program's interfaces are never touched. The handle reads the
// adapter's GUID and description (its TunnelType; Windows may have added " #2" to it)
// from the IP helper API. Closing it ends its sessions and leaves the adapter in
// place.
func OpenAdapter(name string) (*Adapter, error) {
	if err := checkWindowsName(name); err != nil {
		return nil, err
	}
	if err := loadDLL(); err != nil {
		return nil, err
	}
	var h *dll.Adapter
	err := guard("open adapter", func() (err error) {
		h, err = dll.OpenAdapter(name)
		return err
	})
	if err != nil {
		return nil, mapWinError(fmt.Sprintf("open adapter %q", name), err)
	}
	row, err := winipcfg.LUID(h.LUID()).Interface()
	if err != nil {
		h.Close() // not the creator's handle: the adapter stays
		return nil, mapWinError(fmt.Sprintf("open adapter %q: interface entry", name), err)
	}
	return &Adapter{
		name:       name,
		tunnelType: row.Description(),
		guid:       fromWinGUID(winGUID(row.InterfaceGUID)),
		luid:       uint64(row.InterfaceLUID),
		index:      int(row.InterfaceIndex),
		handle:     h,
		sessions:   map[*Session]struct{}{},
	}, nil
}

// Close ends the handle's sessions and releases the handle; if the handle created the
// adapter, its routes and addresses are removed, then the adapter. Close is idempotent. wintun.dll's close call
// reports nothing (the binding's error is whatever the thread's last error was, and is
// ignored), so Close returns nil unless the DLL failed outright.
func (a *Adapter) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	sessions := make([]*Session, 0, len(a.sessions))
	for s := range a.sessions {
		sessions = append(sessions, s)
	}
	a.mu.Unlock()
	for _, s := range sessions {
		s.End()
	}
	if a.watch != nil {
		a.watch.stop()
		a.flush()
	}
	err := guard("close adapter", func() error {
		a.handle.Close()
		return nil
	})
	logInfo("wintun: adapter closed", "name", a.name)
	return err
}

// Name returns the name the adapter was created or opened with.
func (a *Adapter) Name() string { return a.name }

// TunnelType returns the tunnel type given at creation, or for an opened adapter its
// description as Windows reports it.
func (a *Adapter) TunnelType() string { return a.tunnelType }

// GUID returns the adapter's interface GUID.
func (a *Adapter) GUID() GUID { return a.guid }

// Index returns the adapter's interface index.
func (a *Adapter) Index() int { return a.index }

// LUID returns the adapter's locally unique id (NET_LUID), as wintun.dll reports it.
func (a *Adapter) LUID() uint64 { return a.luid }

// Stats returns the counters of all the sessions this handle has run, counted in Go
// as packets cross the session calls, and two of the driver's own counters, which
// count over the adapter's life: ReceiveDropsRingFull is the driver's OutDiscards
// (packets for the application that found the receive ring full, or no session
// running), SendErrors its InDiscards plus InErrors (packets the driver refused,
// including the invalid ones SendDiscardsInvalid counts). If the driver's counters
// cannot be read, those two are zero. ReceiveErrors, ReceiveDropsKernel,
// ReceiveDropsOversize and the super-packet counts are always zero on Windows.
func (a *Adapter) Stats() Stats {
	st := a.stats.snapshot()
	if c, err := a.driverStats(); err == nil {
		st = withDriverCounters(st, c)
	}
	return st
}

// Uninstall removes the Wintun driver from the system if no adapter uses it
// (WintunDeleteDriver). Adapters still present make it fail.
func Uninstall() error {
	if err := loadDLL(); err != nil {
		return err
	}
	return mapWinError("uninstall driver", guard("uninstall driver", dll.Uninstall))
}

// RunningVersion returns the version of the loaded Wintun driver as major<<16 | minor.
// It fails, with an error satisfying errors.Is(err, fs.ErrNotExist), when no driver
// is loaded (no adapter was created since boot).
func RunningVersion() (uint32, error) {
	if err := loadDLL(); err != nil {
		return 0, err
	}
	var v uint32
	err := guard("driver version", func() (err error) {
		v, err = dll.RunningVersion()
		return err
	})
	if err != nil {
		return 0, mapWinError("driver version (is a Wintun driver loaded?)", err)
	}
	return v, nil
}

// UninstallReport is Uninstall for the wintun command. Windows removes the driver as a
// whole and names no adapters, so both lists are empty.
func UninstallReport() (removed, inUse []string, err error) { return nil, nil, Uninstall() }
