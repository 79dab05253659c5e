package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The daemons, wg and wg-quick keep their sockets in socketDir, /var/run/wireguard,
// as wg expects. So that the tests touch nothing there on the host, the test binary
// runs itself again in a private mount namespace (the whole process: a Go program
// cannot move a running process into one) with a fresh tmpfs on socketDir; the
// programs the tests start inherit it, and it disappears with the last of them.

// envPrivateMounts marks the test binary that runs in the private mount namespace.
const envPrivateMounts = "WG_WINTUN_TEST_PRIVATE_MOUNTS"

// errSocketDirShared is nil once socketDir is a private tmpfs, otherwise why it is
// not.
var errSocketDirShared = errors.New("not yet set up")

func TestMain(m *testing.M) {
	if os.Getenv(envPrivateMounts) == "" {
		code, err := runInPrivateMounts()
		if err == nil {
			os.Exit(code)
		}
		// Without the privilege to make a mount namespace, the tests that need one
		// skip (or fail in CI), as they do without the one to make network namespaces.
		errSocketDirShared = err
	} else {
		os.Unsetenv(envPrivateMounts)
		errSocketDirShared = mountSocketDir()
	}
	os.Exit(m.Run())
}

// runInPrivateMounts runs this test binary again, with the same arguments, in a new
// mount namespace whose mounts do not propagate to the host's, and returns its exit
// code; it returns an error if the child cannot start.
func runInPrivateMounts() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), envPrivateMounts+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// With CLONE_NEWNS, the child's mounts are made private before it runs: nothing it
	// mounts reaches the host. It dies with the thread that started it, kept locked, so
	// that a signal that ends this process (^C reaches both) leaves no child behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWNS, Pdeathsig: unix.SIGKILL}
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("a private mount namespace for %s: %w", socketDir, err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		return ee.ExitCode(), nil
	}
	fmt.Fprintf(os.Stderr, "test binary in a private mount namespace: %v\n", err)
	return 1, nil
}

// mountSocketDir mounts a fresh tmpfs on socketDir. Where socketDir does not exist
// on the host, the tmpfs goes on its parent (/run on most systems, whose other
// contents the tests then do not see) rather than creating it there.
func mountSocketDir() error {
	dir, err := filepath.EvalSymlinks(filepath.Dir(socketDir))
	if err != nil {
		return err
	}
	target := filepath.Join(dir, filepath.Base(socketDir))
	if _, err := os.Stat(target); errors.Is(err, os.ErrNotExist) {
		target = dir
	}
	if err := unix.Mount("wintun-test", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount a tmpfs on %s: %w", target, err)
	}
	return os.MkdirAll(socketDir, 0o755)
}

// needPrivateSocketDir skips the test, or fails it in CI (WINTUN_REQUIRE_PRIVILEGED=1),
// unless socketDir is the private tmpfs TestMain set up.
func needPrivateSocketDir(t *testing.T) {
	t.Helper()
	if errSocketDirShared == nil {
		return
	}
	why := fmt.Sprintf("%s is not private to the test: %v", socketDir, errSocketDirShared)
	if os.Getenv("WINTUN_REQUIRE_PRIVILEGED") == "1" {
		t.Fatal(why + " (WINTUN_REQUIRE_PRIVILEGED=1 makes this skip a failure)")
	}
	t.Skip(why)
}
