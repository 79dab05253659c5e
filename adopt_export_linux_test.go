package wintun

// SessionStats returns the counters of the sessions of s's adapter: for a session
// from AdoptSession, its own.
func SessionStats(s *Session) Stats { return s.adapter.stats.snapshot() }

// SessionUsesIOUring reports whether s reads with io_uring.
func SessionUsesIOUring(s *Session) bool { _, ok := s.eng.reader.(*uringReader); return ok }

// SessionEngine names the halves of s's engine, reader then sender: "poll/uring".
func SessionEngine(s *Session) string {
	name := func(x any) string {
		switch x.(type) {
		case *uringReader, *uringSender:
			return "uring"
		case *pollReader, *pollSender:
			return "poll"
		}
		return "?"
	}
	return name(s.eng.reader) + "/" + name(s.eng.sender)
}
