// Command bench measures packet forwarders between two tun devices side by side:
// this library's session API and batch API (with each kernel I/O engine),
// wireguard-go's tun package, songgao/water, a minimal forwarder without any library
// (the ceiling of a forwarder that copies through user space), and a veth pair as the
// kernel-only reference. The wg/ rows run iperf3 through two WireGuard peers: wireguard-go
// in this process on either tun, or the daemons wg drives (upstream wireguard-go's program
// and cmd/wireguard-wintun).
//
// Topology: two fresh network namespaces, one device in each (10.250.0.1/24 and
// 10.250.0.2/24); the forwarder runs as its own process and copies every packet read
// from one device to the other; iperf3's client runs in the first namespace and its
// server in the second. Every forwarder is measured in the same run, interleaved, and
// each figure is the median of the repetitions. Needs root, iperf3 and ping.
//
//	cd bench && go run . [-reps 3] [-t 5] [-json results.json]
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	nsA, nsB = "wtbench-a", "wtbench-b"
	dev      = "wtb0"
	addrA    = "10.250.0.1"
	addrB    = "10.250.0.2"
	mss      = 1448 // TCP payload per 1500-byte packet, to count TCP packets
)

type workload struct {
	Name string
	Args []string // iperf3 client arguments; nil for ping
	Size int      // UDP payload size; 0 for TCP
	Load bool     // for ping: a TCP stream runs through the forwarder meanwhile
}

var allWorkloads = []workload{
	{"tcp1", []string{}, 0, false},
	{"tcp4", []string{"-P", "4"}, 0, false},
	{"udp1400", []string{"-u", "-b", "0", "-l", "1400"}, 1400, false},
	{"udp64", []string{"-u", "-b", "0", "-l", "64"}, 64, false},
	{"ping", nil, 0, false},
	{"pingload", nil, 0, true},
}

// sample is one measurement of one workload through one forwarder.
type sample struct {
	Gbps      float64 `json:"gbps,omitempty"`
	PPS       float64 `json:"pps,omitempty"`               // packets delivered per second
	CPUPerPkt float64 `json:"cpu_ns_per_packet,omitempty"` // forwarder CPU time per delivered packet
	RTTMedian float64 `json:"rtt_median_us,omitempty"`
	RTTP99    float64 `json:"rtt_p99_us,omitempty"`
	Lost      int     `json:"lost,omitempty"` // pings without a reply
}

type results struct {
	Machine    map[string]string              `json:"machine"`
	Started    time.Time                      `json:"started"`
	Reps       int                            `json:"reps"`
	Seconds    int                            `json:"seconds_per_run"`
	Samples    map[string]map[string][]sample `json:"samples"` // workload, forwarder
	Medians    map[string]map[string]sample   `json:"medians"`
	PeakRSSKiB map[string][]int64             `json:"peak_rss_kib"`
	Forwarded  map[string][]forwardResult     `json:"forwarder_counters"`
	Notes      []string                       `json:"notes"`
}

// ringSize is the ring capacity of this library's forwarders (-ring), or 0 for theirs.
var ringSize uint

// profileDir is where forwarders write CPU profiles (-cpuprofile), or empty.
var profileDir string

func main() {
	if len(os.Args) > 1 && os.Args[1] == "wgpeer" {
		if err := wgPeerMain(os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]); err != nil {
			fmt.Fprintln(os.Stderr, "wgpeer:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "forward" {
		if err := forwardMain(os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]); err != nil {
			fmt.Fprintln(os.Stderr, "forward:", err)
			os.Exit(1)
		}
		return
	}
	reps := flag.Int("reps", 3, "repetitions of every measurement (the median is reported)")
	secs := flag.Int("t", 5, "seconds per iperf3 run")
	pings := flag.Int("pings", 1000, "pings per latency run, 1 ms apart")
	fwds := flag.String("forwarders", "veth,direct,wintun,wintun-batch,wintun-mq,wintun+poll,wintun+uring,wintun-batch+poll,wintun-batch+uring,wireguard-go,water,wg/wireguard-go,wg/wintun,wg/wireguard-go-daemon,wg/wireguard-wintun", "forwarders to measure, comma-separated")
	wls := flag.String("workloads", "tcp1,tcp4,udp1400,udp64,ping,pingload", "workloads, comma-separated")
	out := flag.String("json", "bench-results.json", "write all samples and medians to this file")
	flag.UintVar(&ringSize, "ring", 0, "ring capacity of the wintun, wintun-batch and wintun-mq forwarders in `bytes` (a power of 2; default 8 MiB)")
	flag.StringVar(&profileDir, "cpuprofile", "", "write a CPU profile of each forwarder process, and of one in-process WireGuard peer, to `dir`/FORWARDER.pprof (the last repetition's)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fatal(errors.New("needs root (network namespaces and tun devices)"))
	}
	for _, tool := range []string{"iperf3", "ping", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			fatal(fmt.Errorf("%s not found: apt-get install -y iperf3 iputils-ping iproute2", tool))
		}
	}
	var workloads []workload
	for _, w := range allWorkloads {
		if slices.Contains(strings.Split(*wls, ","), w.Name) {
			workloads = append(workloads, w)
		}
	}
	forwarders := strings.Split(*fwds, ",")
	dir, err := os.MkdirTemp("", "wtbench")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	daemonDir = dir
	if daemonPaths, err = buildDaemons(dir, forwarders); err != nil {
		fatal(err)
	}

	// Clean up the namespaces whatever happens, Ctrl+C included.
	cleanup()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "interrupted: cleaning up")
		cleanup()
		os.Exit(1)
	}()
	defer cleanup()
	for _, ns := range []string{nsA, nsB} {
		must(run("ip", "netns", "add", ns))
		must(run("ip", "-n", ns, "link", "set", "lo", "up"))
	}

	res := &results{
		Machine: machine(), Started: time.Now(), Reps: *reps, Seconds: *secs,
		Samples: map[string]map[string][]sample{}, Medians: map[string]map[string]sample{},
		PeakRSSKiB: map[string][]int64{}, Forwarded: map[string][]forwardResult{},
		Notes: []string{
			"TCP packets are counted as delivered bytes / 1448 (one 1500-byte packet each); UDP as datagrams received.",
			"CPU is the forwarder process's user+system time (from /proc) per delivered packet.",
		},
	}
	for rep := 1; rep <= *reps; rep++ {
		for _, f := range forwarders {
			fmt.Fprintf(os.Stderr, "rep %d/%d: %s\n", rep, *reps, f)
			if err := measure(res, f, workloads, *secs, *pings); err != nil {
				fmt.Fprintf(os.Stderr, "  %s: %v\n", f, err)
			}
		}
	}
	for w, byFwd := range res.Samples {
		res.Medians[w] = map[string]sample{}
		for f, ss := range byFwd {
			res.Medians[w][f] = medianSample(ss)
		}
	}
	printTable(res, workloads, forwarders)
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fatal(err)
	}
	fmt.Printf("\nall samples in %s\n", *out)
}

// measure sets up one forwarder between the namespaces, runs every workload through it
// once and tears it down.
func measure(res *results, fwd string, workloads []workload, secs, pings int) error {
	var procs []*exec.Cmd // forwarder or WireGuard peers, whose CPU time is measured
	var outs []*bufio.Reader
	target := addrB
	start := func(cmd *exec.Cmd) error {
		cmd.Stderr = os.Stderr
		pipe, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return err
		}
		r := bufio.NewReader(pipe)
		line, err := r.ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			cmd.Process.Kill()
			return fmt.Errorf("%s did not start: %q %v", fwd, line, err)
		}
		procs = append(procs, cmd)
		outs = append(outs, r)
		return nil
	}
	defer func() {
		for _, p := range procs {
			p.Process.Kill()
		}
	}()
	self, _ := os.Executable()
	if impl, ok := strings.CutPrefix(fwd, "wg/"); ok {
		// Underlay: a veth pair; overlay: the WireGuard devices.
		if err := run("ip", "-n", nsA, "link", "add", dev, "type", "veth", "peer", "name", dev, "netns", nsB); err != nil {
			return err
		}
		defer run("ip", "-n", nsA, "link", "del", dev)
		for ns, addr := range map[string]string{nsA: underlayA, nsB: underlayB} {
			if err := run("ip", "-n", ns, "addr", "add", addr+"/24", "dev", dev); err != nil {
				return err
			}
			if err := run("ip", "-n", ns, "link", "set", dev, "up"); err != nil {
				return err
			}
		}
		privA, pubA := newKey()
		privB, pubB := newKey()
		wgIf := map[string]string{nsA: wgDev, nsB: wgDev}
		if exe, ok := daemonPaths[impl]; ok {
			wgIf = wgDaemonNames
			for _, s := range []struct{ ns, priv, peerPub, endpoint, allowed string }{
				{nsA, privA, pubB, underlayB, tunnelB + "/32"},
				{nsB, privB, pubA, underlayA, tunnelA + "/32"},
			} {
				cmd, err := startDaemon(s.ns, exe, wgIf[s.ns])
				if err != nil {
					return err
				}
				procs = append(procs, cmd)
				outs = append(outs, bufio.NewReader(strings.NewReader(""))) // a daemon reports no counters
				if err := configureDaemon(s.ns, wgIf[s.ns], s.priv, s.peerPub, s.endpoint, s.allowed, daemonDir); err != nil {
					return err
				}
			}
		} else {
			peerA := exec.Command("ip", "netns", "exec", nsA, self, "wgpeer", impl, privA, pubB, underlayB, tunnelB+"/32")
			if profileDir != "" { // one side's profile: both sides run the same code
				peerA.Env = append(os.Environ(), "BENCH_CPUPROFILE="+filepath.Join(profileDir, strings.ReplaceAll(fwd, "/", "-")+".pprof"))
			}
			if err := start(peerA); err != nil {
				return err
			}
			if err := start(exec.Command("ip", "netns", "exec", nsB, self, "wgpeer", impl, privB, pubA, underlayA, tunnelA+"/32")); err != nil {
				return err
			}
		}
		for ns, addr := range map[string]string{nsA: tunnelA, nsB: tunnelB} {
			if err := run("ip", "-n", ns, "addr", "add", addr+"/24", "dev", wgIf[ns]); err != nil {
				return err
			}
			if err := run("ip", "-n", ns, "link", "set", wgIf[ns], "up"); err != nil {
				return err
			}
		}
		target = tunnelB
	} else if fwd == "veth" {
		if err := run("ip", "-n", nsA, "link", "add", dev, "type", "veth", "peer", "name", dev, "netns", nsB); err != nil {
			return err
		}
		defer run("ip", "-n", nsA, "link", "del", dev)
	} else {
		// A suffix such as "+poll" or "+uring" runs the same forwarder with that
		// engine (WINTUN_ENGINE); without one, this library's forwarders run the
		// default engine.
		impl, engine, _ := strings.Cut(fwd, "+")
		fproc := exec.Command(self, "forward", impl, dev+"a", dev+"b", "/run/netns/"+nsA, "/run/netns/"+nsB)
		fproc.Env = append(os.Environ(), "WINTUN_ENGINE="+engine)
		if ringSize != 0 {
			fproc.Env = append(fproc.Env, fmt.Sprintf("BENCH_RING=%d", ringSize))
		}
		if profileDir != "" {
			fproc.Env = append(fproc.Env, "BENCH_CPUPROFILE="+filepath.Join(profileDir, fwd+".pprof"))
		}
		fproc.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
		if err := start(fproc); err != nil {
			return err
		}
		// The devices arrive named wtb0a and wtb0b; give both the same name.
		if err := run("ip", "-n", nsA, "link", "set", dev+"a", "name", dev); err != nil {
			return err
		}
		if err := run("ip", "-n", nsB, "link", "set", dev+"b", "name", dev); err != nil {
			return err
		}
	}
	if target == addrB {
		for ns, addr := range map[string]string{nsA: addrA, nsB: addrB} {
			if err := run("ip", "-n", ns, "addr", "add", addr+"/24", "dev", dev); err != nil {
				return err
			}
			if err := run("ip", "-n", ns, "link", "set", dev, "up"); err != nil {
				return err
			}
		}
	}
	server := exec.Command("ip", "netns", "exec", nsB, "iperf3", "-s", "-B", target)
	if err := server.Start(); err != nil {
		return err
	}
	defer func() { server.Process.Kill(); server.Wait() }()
	time.Sleep(300 * time.Millisecond)

	for _, w := range workloads {
		cpu := func() (t time.Duration) {
			for _, p := range procs {
				t += treeCPU(p.Process.Pid)
			}
			return t
		}
		cpu0 := cpu()
		var s sample
		var delivered float64
		var err error
		if w.Args == nil {
			s, err = pingUnderLoad(target, pings, w.Load)
		} else {
			s, delivered, err = iperf(target, w, secs)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "  %s %s: %v\n", fwd, w.Name, err)
			continue
		}
		if len(procs) > 0 && delivered > 0 {
			s.CPUPerPkt = float64(cpu()-cpu0) / delivered
		}
		if res.Samples[w.Name] == nil {
			res.Samples[w.Name] = map[string][]sample{}
		}
		res.Samples[w.Name][fwd] = append(res.Samples[w.Name][fwd], s)
	}
	var peak int64
	for i, p := range procs {
		peak = max(peak, treeRSS(p.Process.Pid))
		p.Process.Signal(syscall.SIGTERM)
		var fr forwardResult
		if line, err := outs[i].ReadString('\n'); err == nil {
			json.Unmarshal([]byte(line), &fr)
		}
		p.Wait()
		res.Forwarded[fwd] = append(res.Forwarded[fwd], fr)
	}
	if len(procs) > 0 {
		res.PeakRSSKiB[fwd] = append(res.PeakRSSKiB[fwd], peak)
	}
	return nil
}

func iperf(target string, w workload, secs int) (sample, float64, error) {
	args := append([]string{"netns", "exec", nsA, "iperf3", "-c", target, "-t", strconv.Itoa(secs), "-J"}, w.Args...)
	var out []byte
	var err error
	for try := 0; try < 5; try++ { // the server may still be starting
		if out, err = exec.Command("ip", args...).Output(); err == nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil {
		return sample{}, 0, fmt.Errorf("iperf3: %v: %s", err, lastLine(out))
	}
	var r struct {
		End struct {
			SumReceived struct {
				Seconds float64 `json:"seconds"`
				Bytes   float64 `json:"bytes"`
				Bps     float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.Error != "" {
		return sample{}, 0, fmt.Errorf("iperf3 output: %v %s", err, r.Error)
	}
	sr := r.End.SumReceived
	per := float64(mss)
	if w.Size > 0 {
		per = float64(w.Size)
	}
	delivered := sr.Bytes / per
	return sample{Gbps: sr.Bps / 1e9, PPS: delivered / sr.Seconds}, delivered, nil
}

// pingUnderLoad is ping, with a TCP stream from the same namespace through the
// forwarder while the pings run when load is set: the latency a flow sees beside a bulk
// transfer, which queues in the forwarder's rings.
func pingUnderLoad(target string, n int, load bool) (sample, error) {
	if !load {
		return ping(target, n)
	}
	// Longer than the pings take (1 ms apart, and slower under load); stopped after them.
	secs := n/500 + 5
	stream := exec.Command("ip", "netns", "exec", nsA, "iperf3", "-c", target, "-t", strconv.Itoa(secs))
	if err := stream.Start(); err != nil {
		return sample{}, fmt.Errorf("iperf3 load: %v", err)
	}
	defer func() { stream.Process.Kill(); stream.Wait(); time.Sleep(300 * time.Millisecond) }()
	time.Sleep(time.Second) // the stream reaches its rate
	return ping(target, n)
}

func ping(target string, n int) (sample, error) {
	out, err := exec.Command("ip", "netns", "exec", nsA, "ping", "-n", "-c", strconv.Itoa(n), "-i", "0.001", "-W", "1", target).Output()
	if err != nil && len(out) == 0 {
		return sample{}, fmt.Errorf("ping: %v", err)
	}
	var rtts []float64
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "time="); i >= 0 {
			f := strings.Fields(line[i+5:])
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				rtts = append(rtts, v*1000)
			}
		}
	}
	if len(rtts) == 0 {
		return sample{}, errors.New("no ping reply")
	}
	slices.Sort(rtts)
	return sample{RTTMedian: rtts[len(rtts)/2], RTTP99: rtts[len(rtts)*99/100], Lost: n - len(rtts)}, nil
}

// treeCPU is the CPU time of a process and its children (ip netns exec execs the
// peer, so the pid is the peer's own).
func treeCPU(pid int) time.Duration { return procCPU(pid) }

// treeRSS is a process's peak resident set size in KiB (VmHWM).
func treeRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// procCPU is a process's user+system CPU time so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

func medianSample(ss []sample) sample {
	med := func(get func(sample) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = get(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return sample{
		Gbps:      med(func(s sample) float64 { return s.Gbps }),
		PPS:       med(func(s sample) float64 { return s.PPS }),
		CPUPerPkt: med(func(s sample) float64 { return s.CPUPerPkt }),
		RTTMedian: med(func(s sample) float64 { return s.RTTMedian }),
		RTTP99:    med(func(s sample) float64 { return s.RTTP99 }),
		Lost:      int(med(func(s sample) float64 { return float64(s.Lost) })),
	}
}

func printTable(res *results, workloads []workload, forwarders []string) {
	fmt.Printf("\n%s, %s cores, %s; medians of %d runs of %d s\n\n",
		res.Machine["cpu"], res.Machine["cores"], res.Machine["kernel"], res.Reps, res.Seconds)
	ratio := func(v, ref float64) string {
		if v == 0 || ref == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", v/ref)
	}
	fmt.Printf("%-8s %-22s %9s %10s %12s %10s %10s\n", "workload", "forwarder", "Gbit/s", "kpps", "CPU ns/pkt", "Gbit/s/wg", "CPU/wg")
	for _, w := range workloads {
		if w.Args == nil {
			continue
		}
		wg := res.Medians[w.Name]["wireguard-go"]
		for _, f := range forwarders {
			m, ok := res.Medians[w.Name][f]
			if !ok {
				continue
			}
			cpu := "-"
			if m.CPUPerPkt > 0 {
				cpu = fmt.Sprintf("%.0f", m.CPUPerPkt)
			}
			fmt.Printf("%-8s %-22s %9.2f %10.1f %12s %10s %10s\n", w.Name, f, m.Gbps, m.PPS/1e3, cpu,
				ratio(m.Gbps, wg.Gbps), ratio(m.CPUPerPkt, wg.CPUPerPkt))
		}
	}
	for _, w := range workloads {
		if w.Args != nil {
			continue
		}
		fmt.Printf("\n%-8s %-22s %12s %12s %6s %12s\n", w.Name, "forwarder", "median us", "p99 us", "lost", "median/wg")
		wg := res.Medians[w.Name]["wireguard-go"]
		for _, f := range forwarders {
			if m, ok := res.Medians[w.Name][f]; ok {
				fmt.Printf("%-8s %-22s %12.1f %12.1f %6d %12s\n", "", f, m.RTTMedian, m.RTTP99, m.Lost, ratio(m.RTTMedian, wg.RTTMedian))
			}
		}
	}
	fmt.Printf("\n%-22s %14s\n", "forwarder", "peak RSS MiB")
	for _, f := range forwarders {
		if v := res.PeakRSSKiB[f]; len(v) > 0 {
			s := slices.Clone(v)
			slices.Sort(s)
			fmt.Printf("%-22s %14.1f\n", f, float64(s[len(s)/2])/1024)
		}
	}
}

func machine() map[string]string {
	m := map[string]string{"cores": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = "Linux " + strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return m
}

func cleanup() {
	for _, ns := range []string{nsA, nsB} {
		exec.Command("ip", "netns", "pids", ns).Run()
		if out, _ := exec.Command("ip", "netns", "pids", ns).Output(); len(out) > 0 {
			for _, p := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(p); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func must(err error) {
	if err != nil {
		cleanup()
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
