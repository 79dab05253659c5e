package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/wgtun"
)

// socketDir is where wireguard-go's ipc package puts the UAPI sockets, and where wg
// looks for them.
const socketDir = "/var/run/wireguard"

// readyTimeout bounds how long the starting process waits for its background child;
// creating an interface and a socket takes milliseconds.
const readyTimeout = 30 * time.Second

// envReadyFD names the descriptor on which the daemon's child tells its parent that
// it is ready, or why it failed.
const envReadyFD = "WG_WINTUN_READY_FD"

// readyOK is what the background child writes on its ready descriptor once the
// interface and the socket exist; anything else it writes is the reason it failed.
const readyOK = "ok\n"

// logLevel reads LOG_LEVEL as wireguard-go does; errors only by default.
func logLevel() int {
	switch os.Getenv("LOG_LEVEL") {
	case "verbose", "debug":
		return device.LogLevelVerbose
	case "silent":
		return device.LogLevelSilent
	}
	return device.LogLevelError
}

// daemon runs the interface name: in this process when foreground, otherwise in a
// child started in its own session, whose readiness it waits for, so that wg-quick
// finds the socket as soon as this process returns.
func daemon(name string, foreground bool, stdout, stderr io.Writer) error {
	if !foreground {
		return startBackground(name)
	}
	var ready *os.File
	if s := os.Getenv(envReadyFD); s != "" {
		os.Unsetenv(envReadyFD)
		fd, err := strconv.Atoi(s)
		if err != nil || fd < 3 {
			return fmt.Errorf("invalid %s=%q", envReadyFD, s)
		}
		unix.CloseOnExec(fd)
		ready = os.NewFile(uintptr(fd), "ready")
	}
	return serve(name, logLevel(), ready)
}

// startBackground starts this program again as the interface's daemon and waits
// until it is ready or has failed.
func startBackground(name string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to run it in the background: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start in the background: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, name)
	cmd.Env = append(os.Environ(), envForeground+"=1", envReadyFD+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Dir = "/"
	// Its own session: no terminal's signals reach the daemon.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if os.Getenv("LOG_LEVEL") != "" && logLevel() != device.LogLevelSilent {
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start in the background: %w", err)
	}
	r.SetReadDeadline(time.Now().Add(readyTimeout))
	msg, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("waiting for the background process: %w", err)
	}
	if string(msg) == readyOK {
		return cmd.Process.Release()
	}
	werr := cmd.Wait()
	if len(msg) > 0 {
		return errors.New(strings.TrimSpace(string(msg)))
	}
	return fmt.Errorf("the background process ended before it was ready: %v", werr)
}

// serve creates the interface and its UAPI socket, tells ready (if any) that it did or
// why it could not, and serves wg's requests until the interface is deleted, the
// socket is removed, or SIGTERM or SIGINT arrives. It then removes both.
func serve(name string, level int, ready *os.File) (err error) {
	notify := func(msg string) {
		if ready != nil {
			ready.WriteString(msg)
			ready.Close()
			ready = nil
		}
	}
	defer func() {
		if err != nil {
			notify(err.Error() + "\n")
		}
	}()
	logger := device.NewLogger(level, fmt.Sprintf("(%s) ", name))
	logger.Verbosef("Starting wireguard-wintun")

	adapter, err := wintun.CreateAdapter(name, "WireGuard", nil, wintun.WithMTU(device.DefaultMTU))
	if err != nil {
		return fmt.Errorf("create the interface: %w", err)
	}
	defer adapter.Close() // removes the interface, if it is still there
	// A full send ring drops at once, as a network card would: upstream's tun never
	// makes wireguard-go wait, and a wait would back its queues and buffer pools up.
	tdev, err := wgtun.New(adapter, wgtun.WithWriteWait(0))
	if err != nil {
		return err
	}
	sock := filepath.Join(socketDir, name+".sock")
	uapiFile, err := ipc.UAPIOpen(name)
	if err != nil {
		tdev.Close()
		return fmt.Errorf("open the configuration socket %s: %w", sock, err)
	}
	uapi, err := ipc.UAPIListen(name, uapiFile)
	uapiFile.Close() // the listener holds its own descriptor
	if err != nil {
		os.Remove(sock)
		tdev.Close()
		return fmt.Errorf("listen on the configuration socket %s: %w", sock, err)
	}
	// wireguard-go closes the device, and tdev with it, when tdev's Read fails: that is
	// how the deletion of the interface ends the daemon.
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), logger)
	defer dev.Close()  // before adapter.Close: the device's reads end first
	defer uapi.Close() // removes the socket

	term := make(chan os.Signal, 1)
	signal.Notify(term, unix.SIGTERM, os.Interrupt)
	defer signal.Stop(term)
	accepted := make(chan error, 1)
	go func() {
		for {
			c, err := uapi.Accept()
			if err != nil {
				accepted <- err
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	logger.Verbosef("Device started; configuration socket %s", sock)
	notify(readyOK)

	select {
	case s := <-term:
		logger.Verbosef("Shutting down on %v", s)
	case err := <-accepted:
		// The ipc listener fails when its socket file is removed.
		logger.Verbosef("Shutting down: configuration socket: %v", err)
	case <-dev.Wait():
		logger.Verbosef("Shutting down: the interface is gone")
	}
	return nil
}
