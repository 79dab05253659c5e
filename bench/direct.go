package main

import (
	"fmt"

	"runtime"

	"golang.org/x/sys/unix"
)

// The direct forwarder is the ceiling of any forwarder that copies packets through
// user space on Linux: two tun devices with IFF_VNET_HDR and TSO/USO on, one goroutine
// per direction on its own thread doing a blocking read of a super-packet and writing
// it, header and all, to the other device. No library, no ring, no splitting, no
// coalescing: just the two copies the tun driver makes. It is how tun-rs forwards.

const (
	tunFCSUM = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
	tunFUSO4 = 0x20
	tunFUSO6 = 0x40
)

func directSide(name, ns string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return -1, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return -1, fmt.Errorf("TUNSETIFF: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCSUM|tunFTSO4|tunFTSO6|tunFUSO4|tunFUSO6); err != nil {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCSUM|tunFTSO4|tunFTSO6); err != nil {
			return -1, fmt.Errorf("TUNSETOFFLOAD: %w", err)
		}
	}
	return fd, moveTo(name, ns)
}

// directPump reads on its own thread, sleeping in poll(2) only when the device has
// nothing queued (with a timeout, to notice stop): one system call per super-packet
// each way while traffic flows, and no Go poller.
func directPump(from, to int) pump {
	return func(stop <-chan struct{}, c *counters) {
		runtime.LockOSThread()
		buf := make([]byte, 10+65535)
		pfd := []unix.PollFd{{Fd: int32(from), Events: unix.POLLIN}}
		for {
			n, err := unix.Read(from, buf)
			if err == unix.EAGAIN {
				select {
				case <-stop:
					return
				default:
				}
				unix.Poll(pfd, 100)
				continue
			}
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return
			}
			if _, err := unix.Write(to, buf[:n]); err != nil {
				c.Drops.Add(1)
				continue
			}
			c.Packets.Add(1)
		}
	}
}
