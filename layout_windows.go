//go:build windows && (amd64 || arm64)

package wintun

// Compile-time checks of the layouts of the IP helper structures this package passes
// to Windows, against the sizes and offsets of the Windows SDK headers on 64-bit
// systems: each pair of array lengths is negative, which does not compile, unless the
// two numbers are equal. Building for windows/amd64 or windows/arm64 (as CI does on
// Linux) therefore checks them without Windows.

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	// SOCKADDR_INET, read through sockaddrInet
	_ [unsafe.Sizeof(windows.RawSockaddrInet{}) - 28]struct{}
	_ [28 - unsafe.Sizeof(windows.RawSockaddrInet{})]struct{}
	// the Address union of MIB_UNICASTIPADDRESS_ROW
	_ [unsafe.Sizeof(windows.RawSockaddrInet6{}) - 28]struct{}
	_ [28 - unsafe.Sizeof(windows.RawSockaddrInet6{})]struct{}
	// GUID
	_ [unsafe.Sizeof(windows.GUID{}) - 16]struct{}
	_ [16 - unsafe.Sizeof(windows.GUID{})]struct{}
	// MIB_IPINTERFACE_ROW is 168 bytes; x/sys declares its two last offload fields
	// (one-byte bit fields in the SDK) as uint32, which makes it 176. A larger buffer is
	// harmless: GetIpInterfaceEntry and SetIpInterfaceEntry use the first 168 bytes,
	// which SetMTU passes back unchanged apart from SitePrefixLength and NlMtu.
	_ [unsafe.Sizeof(windows.MibIpInterfaceRow{}) - 168]struct{}
	_ [unsafe.Offsetof(windows.MibIpInterfaceRow{}.InterfaceLuid) - 8]struct{}
	_ [8 - unsafe.Offsetof(windows.MibIpInterfaceRow{}.InterfaceLuid)]struct{}
	_ [unsafe.Offsetof(windows.MibIpInterfaceRow{}.SitePrefixLength) - 144]struct{}
	_ [144 - unsafe.Offsetof(windows.MibIpInterfaceRow{}.SitePrefixLength)]struct{}
	_ [unsafe.Offsetof(windows.MibIpInterfaceRow{}.NlMtu) - 152]struct{}
	_ [152 - unsafe.Offsetof(windows.MibIpInterfaceRow{}.NlMtu)]struct{}
	// MIB_UNICASTIPADDRESS_ROW
	_ [unsafe.Sizeof(windows.MibUnicastIpAddressRow{}) - 80]struct{}
	_ [80 - unsafe.Sizeof(windows.MibUnicastIpAddressRow{})]struct{}
	_ [unsafe.Offsetof(windows.MibUnicastIpAddressRow{}.InterfaceLuid) - 32]struct{}
	_ [32 - unsafe.Offsetof(windows.MibUnicastIpAddressRow{}.InterfaceLuid)]struct{}
	_ [unsafe.Offsetof(windows.MibUnicastIpAddressRow{}.OnLinkPrefixLength) - 60]struct{}
	_ [60 - unsafe.Offsetof(windows.MibUnicastIpAddressRow{}.OnLinkPrefixLength)]struct{}
	_ [unsafe.Offsetof(windows.MibUnicastIpAddressRow{}.DadState) - 64]struct{}
	_ [64 - unsafe.Offsetof(windows.MibUnicastIpAddressRow{}.DadState)]struct{}
	// MIB_UNICASTIPADDRESS_TABLE
	_ [unsafe.Offsetof(windows.MibUnicastIpAddressTable{}.Table) - 8]struct{}
	_ [8 - unsafe.Offsetof(windows.MibUnicastIpAddressTable{}.Table)]struct{}
	// MIB_IPFORWARD_ROW2
	_ [unsafe.Sizeof(windows.MibIpForwardRow2{}) - 104]struct{}
	_ [104 - unsafe.Sizeof(windows.MibIpForwardRow2{})]struct{}
	_ [unsafe.Offsetof(windows.MibIpForwardRow2{}.DestinationPrefix) - 12]struct{}
	_ [12 - unsafe.Offsetof(windows.MibIpForwardRow2{}.DestinationPrefix)]struct{}
	// IP_ADDRESS_PREFIX
	_ [unsafe.Offsetof(windows.IpAddressPrefix{}.PrefixLength) - 28]struct{}
	_ [28 - unsafe.Offsetof(windows.IpAddressPrefix{}.PrefixLength)]struct{}
	_ [unsafe.Offsetof(windows.MibIpForwardRow2{}.NextHop) - 44]struct{}
	_ [44 - unsafe.Offsetof(windows.MibIpForwardRow2{}.NextHop)]struct{}
	_ [unsafe.Offsetof(windows.MibIpForwardRow2{}.Metric) - 84]struct{}
	_ [84 - unsafe.Offsetof(windows.MibIpForwardRow2{}.Metric)]struct{}
	// MIB_IF_ROW2
	_ [unsafe.Sizeof(windows.MibIfRow2{}) - 1352]struct{}
	_ [1352 - unsafe.Sizeof(windows.MibIfRow2{})]struct{}
	_ [unsafe.Offsetof(windows.MibIfRow2{}.InterfaceGuid) - 12]struct{}
	_ [12 - unsafe.Offsetof(windows.MibIfRow2{}.InterfaceGuid)]struct{}
	_ [unsafe.Offsetof(windows.MibIfRow2{}.Description) - 542]struct{}
	_ [542 - unsafe.Offsetof(windows.MibIfRow2{}.Description)]struct{}
)
