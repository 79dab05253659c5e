package wintun

// SetCreateInPrivateNamespace makes CreateAdapter create devices in a private network
// namespace (on, the default) or, as for a creator that may not make one, in the
// caller's; it returns a function that restores the previous setting.
func SetCreateInPrivateNamespace(on bool) (restore func()) {
	old := createInPrivateNamespace.Swap(on)
	return func() { createInPrivateNamespace.Store(old) }
}
