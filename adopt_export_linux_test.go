package wintun

// SessionStats returns the counters of the sessions of s's adapter: for a session
// from AdoptSession, its own.
func SessionStats(s *Session) Stats { return s.adapter.stats.snapshot() }

// SessionUsesIOUring reports whether s runs the io_uring engine.
func SessionUsesIOUring(s *Session) bool { _, ok := s.eng.(*uringEngine); return ok }
