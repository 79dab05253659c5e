package wintun

// checkName validates an adapter name with the rules Wintun and Windows apply.
func checkName(name string) error { return checkWindowsName(name) }
