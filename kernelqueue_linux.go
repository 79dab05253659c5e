package wintun

import (
	"errors"
	"fmt"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The tun driver keeps, for each queue, a ring of tx_queue_len packets that the
// kernel has sent and the session has not read yet; when it is full the kernel drops
// the packet and counts it in the device's TX dropped counter. Wintun's driver puts
// packets straight into the session's ring, which is the only buffer: here a burst
// must likewise be lost only when the session's ring cannot hold it, so a session
// makes the kernel's queue hold as many packets as its receive ring can (the
// smallest IPv4 packet's record is the unit), up to kernelQueueMax.
//
// The queue holds packets the kernel no longer charges to their senders, so its
// length bounds what a stalled session lets the kernel pile up: kernelQueueMax keeps
// that to tens of megabytes of ordinary packets. And a qdisc in front of the queue
// would allocate tx_queue_len entries for each of the device's 256 transmit queues:
// adapters have none (noqueue), which the tun driver, never stopping its queues,
// does not need.

// kernelQueueMax is the longest kernel queue a session asks for.
const kernelQueueMax = 8192

// kernelQueueLen is the kernel queue length that holds a full receive ring of
// capacity bytes.
func kernelQueueLen(capacity uint32) int {
	return min(int(capacity/alignRecord(20)), kernelQueueMax)
}

// setNoQueue replaces the default qdisc of the device with noqueue.
func setNoQueue(link netlink.Link) error {
	return netlink.QdiscReplace(&netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Parent: netlink.HANDLE_ROOT},
		QdiscType:  "noqueue",
	})
}

// raiseKernelQueue makes the adapter's kernel queue at least as long as a receive
// ring of capacity bytes needs. It never shortens it: the adapter's other sessions
// may need it. Without CAP_NET_ADMIN it cannot, and an adapter with a qdisc (made by
// something else) keeps its queue: the qdisc would grow with it.
func raiseKernelQueue(link netlink.Link, capacity uint32) {
	want := kernelQueueLen(capacity)
	if link.Attrs().TxQLen >= want {
		return
	}
	qdiscs, err := netlink.QdiscList(link)
	if err == nil && (len(qdiscs) != 1 || qdiscs[0].Type() != "noqueue") {
		err = errors.New("the adapter has a qdisc")
	}
	if err == nil {
		err = netlink.LinkSetTxQLen(link, want)
	}
	if err == nil {
		return
	}
	if _, said := queueWarned.LoadOrStore(link.Attrs().Name, true); !said {
		logWarn("wintun: cannot lengthen the kernel's queue for the adapter; bursts longer than it are dropped (Stats.ReceiveDropsKernel)",
			"adapter", link.Attrs().Name, "queue", link.Attrs().TxQLen, "want", want, "err", err)
	}
}

// queueWarned holds the names of the adapters whose queue raiseKernelQueue could not
// lengthen, so that it says so once, not at every session.
var queueWarned sync.Map

// deviceLink looks up the tun device of the attached queue fd by name, through
// netlink in the device's network namespace (which need not be the caller's).
func deviceLink(fd int, name string) (netlink.Link, error) {
	nsfd, err := unix.IoctlRetInt(fd, unix.TUNGETDEVNETNS)
	if err != nil {
		return nil, err
	}
	defer unix.Close(nsfd)
	h, err := netlink.NewHandleAt(netns.NsHandle(nsfd), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.LinkByName(name)
}

// kernelDrops reads the device's TX dropped counter: through a running session's
// queue, wherever the device is, or else by index in the caller's namespace. It
// returns 0 if neither finds the adapter.
func (a *Adapter) kernelDrops() uint64 {
	a.mu.Lock()
	var s *Session
	for s = range a.sessions {
		break
	}
	a.mu.Unlock()
	var link netlink.Link
	err := fmt.Errorf("no session")
	if s != nil {
		s.conn.Control(func(fd uintptr) { link, err = deviceLink(int(fd), a.name) })
	}
	if err != nil {
		if link, err = netlink.LinkByIndex(a.index); err == nil {
			if g, _, ok := parseAlias(link.Attrs().Alias); !ok || g != a.guid {
				return 0
			}
		}
	}
	if err != nil || link.Attrs().Statistics == nil {
		return 0
	}
	return link.Attrs().Statistics.TxDropped
}
