package wintun_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"

	"golang.org/x/sys/unix"
)

// attackerEnv makes the test binary, re-executed by TestCreateAdapterRace, run
// TestAttackerChild: its value is "name:uid:gid".
const attackerEnv = "WINTUN_TEST_ATTACKER_CHILD"

// TestCreateAdapterRace creates and closes an adapter again and again while a process
// of the user nobody, in the same network namespace, spins on TUNSETIFF for the same
// name, as an attacker would to attach a queue of its own to a device whose owner is
// not set yet. The attacker must never attach, and after every creation iproute2
// must show the device with our one queue and our owner only.
//
// The other runs force the fallback for a creator that may not make a network
// namespace of its own: the window then exists, so the attacker may attach, but
// CreateAdapter must notice it and fail, and may never return an adapter that
// another process holds a queue of ("claim": the attacker makes itself the owner and
// holds its queue a while), nor one whose settings an attacker changed before it
// left at once ("poison": virtio header size, link type, send buffer).
func TestCreateAdapterRace(t *testing.T) {
	for _, c := range []struct {
		private bool
		mode    string
	}{{true, "claim"}, {false, "claim"}, {false, "poison"}} {
		t.Run(fmt.Sprintf("private=%v/%s", c.private, c.mode), func(t *testing.T) {
			defer wintun.SetCreateInPrivateNamespace(c.private)()
			createAdapterRace(t, c.private, c.mode)
		})
	}
}

func createAdapterRace(t *testing.T, private bool, mode string) {
	ns := netns.ForTest(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const name, cycles = "wtrace", 200
	var attached, created, refused int
	err = ns.Do(func() error {
		cmd := exec.Command(exe, "-test.run=^TestAttackerChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d:%d:%s", attackerEnv, name, unprivUID, unprivGID, mode))
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		defer cmd.Wait()
		defer stdin.Close() // the child stops when its standard input closes
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		select {
		case l := <-lines:
			if l != "attacker ready" {
				return fmt.Errorf("attacker: %q", l)
			}
		case <-time.After(30 * time.Second):
			return errors.New("attacker did not start")
		}
		for i := 0; i < cycles; i++ {
			a, err := wintun.CreateAdapter(name, "Test", nil)
			if err != nil {
				if private || !errors.Is(err, syscall.EBUSY) {
					return fmt.Errorf("cycle %d: CreateAdapter: %w", i, err)
				}
				refused++
				continue
			}
			created++
			verr := checkOnlyOurQueue(name)
			if verr == nil {
				verr = checkSettings(name)
			}
			a.Close()
			if verr != nil {
				return fmt.Errorf("cycle %d: %w", i, verr)
			}
		}
		stdin.Close()
		for l := range lines {
			if l == "attached" {
				attached++
			} else {
				t.Logf("attacker: %s", l)
			}
		}
		return nil
	})
	t.Logf("%d cycles: %d adapters created, %d creations refused, the attacker attached %d times", cycles, created, refused, attached)
	if err != nil {
		t.Fatal(err)
	}
	if private && attached > 0 {
		t.Fatalf("the unprivileged attacker attached to a new adapter %d times in %d cycles", attached, cycles)
	}
	if mode == "poison" && created == cycles {
		t.Logf("the attacker reached no adapter in %d cycles", cycles)
	}
	if !private && refused > attached {
		t.Fatalf("%d creations refused, more than the %d times the attacker attached", refused, attached)
	}
}

// checkOnlyOurQueue asks iproute2 how many queues the tun device name has and who
// owns it: the creator's one detached control queue, and the creator (root).
func checkOnlyOurQueue(name string) error {
	out, err := exec.Command("ip", "-d", "-j", "link", "show", "dev", name).Output()
	if err != nil {
		return fmt.Errorf("ip link show %s: %w", name, err)
	}
	var links []struct {
		LinkType string `json:"link_type"`
		LinkInfo struct {
			Data struct {
				NumQueues   *int   `json:"numqueues"`
				NumDisabled *int   `json:"numdisabled"`
				User        string `json:"user"`
				Group       string `json:"group"`
			} `json:"info_data"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return fmt.Errorf("ip link show %s: %v: %s", name, err, out)
	}
	d := links[0].LinkInfo.Data
	if d.NumQueues == nil || d.NumDisabled == nil || *d.NumQueues+*d.NumDisabled != 1 || d.User != "root" || d.Group != "" || links[0].LinkType != "none" {
		return fmt.Errorf("adapter %s has queues or an owner that are not ours: %s", name, out)
	}
	return nil
}

// checkSettings attaches a queue of its own to the tun device name and reads the
// device-wide settings an intruder could have changed: they must be the kernel's
// defaults for a device with virtio headers.
func checkSettings(name string) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, _ := unix.NewIfreq(name)
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("attach to %s: %w", name, err)
	}
	hdr, err := unix.IoctlGetInt(fd, unix.TUNGETVNETHDRSZ)
	if err != nil {
		return err
	}
	sndbuf, err := unix.IoctlGetInt(fd, unix.TUNGETSNDBUF)
	if err != nil {
		return err
	}
	if hdr != 10 || sndbuf != math.MaxInt32 {
		return fmt.Errorf("adapter %s has virtio header size %d and send buffer %d: changed by another process", name, hdr, sndbuf)
	}
	return nil
}

// TestAttackerChild runs only in the child of TestCreateAdapterRace: as an
// unprivileged user, it tries to attach a queue to the device by name until its
// standard input closes, and prints "attached" each time it succeeds (then claims the
// device as its own with TUNSETOWNER, as an attacker would).
func TestAttackerChild(t *testing.T) {
	v := os.Getenv(attackerEnv)
	if v == "" {
		t.Skip("run by TestCreateAdapterRace")
	}
	var uid, gid int
	parts := strings.Split(v, ":")
	if len(parts) != 4 {
		t.Fatalf("%s=%q", attackerEnv, v)
	}
	name, mode := parts[0], parts[3]
	if _, err := fmt.Sscanf(parts[1]+" "+parts[2], "%d %d", &uid, &gid); err != nil {
		t.Fatal(err)
	}
	becomeUnprivileged(t, uid, gid, nil)
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	fmt.Println("attacker ready")
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			return
		default:
		}
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 1000; i++ {
			ifr, _ := unix.NewIfreq(name)
			ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE | unix.IFF_VNET_HDR)
			if unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr) != nil {
				continue
			}
			if mode == "poison" {
				// Change what the owner cannot see and leave at once.
				unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, 12)
				unix.IoctlSetInt(fd, unix.TUNSETLINK, unix.ARPHRD_ETHER)
				unix.IoctlSetPointerInt(fd, unix.TUNSETSNDBUF, 4096)
				fmt.Println("attached")
				break
			}
			// Claim the device, and hold the queue a while to read traffic.
			unix.IoctlSetInt(fd, unix.TUNSETOWNER, uid)
			fmt.Println("attached")
			time.Sleep(20 * time.Millisecond)
			break
		}
		unix.Close(fd)
	}
}

// mainThreadEnv makes the test binary, re-executed by TestCreateAdapterOnMainThread,
// call CreateAdapter from its main goroutine (see TestMain) and report namespaces.
const mainThreadEnv = "WINTUN_TEST_MAIN_THREAD_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(mainThreadEnv) != "" {
		os.Exit(createOnMainThread())
	}
	os.Exit(m.Run())
}

// createOnMainThread creates and closes adapters from the main goroutine, which the
// runtime starts on the main thread, then prints the namespace of every thread of
// the process and exits 0 if all are where the process started.
func createOnMainThread() int {
	home, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; i < 20; i++ {
		a, err := wintun.CreateAdapter("wtmain", "Test", nil)
		if err != nil {
			fmt.Println("CreateAdapter:", err)
			return 1
		}
		a.Close()
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	status := 0
	for _, task := range tasks {
		ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
		if err == nil && ns != home {
			fmt.Printf("thread %s is in %s, not in the process's %s\n", task.Name(), ns, home)
			status = 1
		}
	}
	return status
}

// TestCreateAdapterOnMainThread creates adapters from a process's main goroutine: the
// thread that CreateAdapter borrows to make the device in a private namespace must
// come back to its own namespace, whichever thread it is (the main thread is never
// ended by the runtime, so a thread left behind there would put the process's
// /proc/self/net in the private namespace for good).
func TestCreateAdapterOnMainThread(t *testing.T) {
	ns := netns.ForTest(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	err = ns.Do(func() error {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), mainThreadEnv+"=1")
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
