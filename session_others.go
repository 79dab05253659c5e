//go:build !linux && !windows

package wintun

// Session is a pair of rings attached to an adapter. This operating system has no
// implementation: StartSession and AdoptSession never return one, and the methods of
// the zero value report errors.ErrUnsupported.
type Session struct {
	_ struct{}
}

// StartSession starts a session on the adapter. On this operating system it returns an
// error that satisfies errors.Is(err, errors.ErrUnsupported).
func (a *Adapter) StartSession(capacity uint32, opts ...SessionOption) (*Session, error) {
	return nil, unsupported("start session")
}

// closedEvent is what ReadWaitEvent returns: closed, as for a session that has ended,
// so that a caller waiting on it wakes up and meets the error of ReceivePacket.
var closedEvent = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// End ends the session; on this operating system there is nothing to end.
func (s *Session) End() {}

// ReadWaitEvent returns a channel that receives after packets arrive. On this
// operating system it is closed, as after End.
func (s *Session) ReadWaitEvent() <-chan struct{} { return closedEvent }

// ReceivePacket returns the next received packet. On this operating system it returns
// an error that satisfies errors.Is(err, errors.ErrUnsupported).
func (s *Session) ReceivePacket() ([]byte, error) { return nil, unsupported("receive packet") }

// ReceivePackets is ReceivePacket for a bundle. On this operating system it returns an
// error that satisfies errors.Is(err, errors.ErrUnsupported).
func (s *Session) ReceivePackets(packets [][]byte) (int, error) {
	return 0, unsupported("receive packets")
}

// ReleaseReceivePacket gives back a packet from ReceivePacket; on this operating
// system there is none to give back.
func (s *Session) ReleaseReceivePacket(packet []byte) {}

// ReleaseReceivePackets releases packets from ReceivePackets; on this operating system
// there are none.
func (s *Session) ReleaseReceivePackets(packets [][]byte) {}

// AllocateSendPacket reserves ring space for a packet. On this operating system it
// returns an error that satisfies errors.Is(err, errors.ErrUnsupported).
func (s *Session) AllocateSendPacket(size int) ([]byte, error) {
	return nil, unsupported("allocate send packet")
}

// AllocateSendPackets allocates a bundle of packets. On this operating system it
// returns an error that satisfies errors.Is(err, errors.ErrUnsupported).
func (s *Session) AllocateSendPackets(sizes []int, packets [][]byte) (int, error) {
	return 0, unsupported("allocate send packets")
}

// SendPacket commits a packet from AllocateSendPacket; on this operating system there
// is none to commit.
func (s *Session) SendPacket(packet []byte) {}

// SendPackets commits packets from AllocateSendPackets; on this operating system there
// are none.
func (s *Session) SendPackets(packets [][]byte) {}
