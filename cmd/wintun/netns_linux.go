package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// reexecInNamespace runs this program again in a new network namespace and, for a
// user without CAP_NET_ADMIN, a new user namespace in which it is root: there it may
// create adapters, visible to nobody else. It returns the child's exit status.
func reexecInNamespace(userNS bool) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGTERM}
	if userNS {
		fmt.Fprintln(os.Stderr, "wintun demo: no CAP_NET_ADMIN; running in a new user and network namespace")
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	} else {
		fmt.Fprintln(os.Stderr, "wintun demo: running in a new network namespace")
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), reexecEnv+"=1")
	cmd.SysProcAttr = attr
	// The child gets Ctrl+C from the terminal itself; a SIGTERM sent to this process
	// alone is passed on.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot create a private namespace: %w (user namespaces may be disabled: run as root instead)", err)
	}
	go func() {
		for sig := range signals {
			if sig == syscall.SIGTERM {
				cmd.Process.Signal(sig)
			}
		}
	}()
	if err := cmd.Wait(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return exitError(ee.ExitCode())
		}
		return err
	}
	return nil
}

// hasCapNetAdmin reports whether CAP_NET_ADMIN is in the effective capability set.
func hasCapNetAdmin() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<12) != 0 // CAP_NET_ADMIN
		}
	}
	return false
}
