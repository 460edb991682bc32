// Command bench measures axarchive end to end against plain gRPC clients and a plain segment-file pass,
// side by side in one run, on a store of realistic generated events (internal/eventgen):
//
//	go run ./internal/bench [-events 200000] [-stages live,verify,import,offline] [-repeat 1]
//
// It builds cmd/axarchive into a temporary directory, loads the events into the in-process Axon Server
// test double (internal/axontest), and runs, each as a subprocess whose peak RSS the OS reports:
//
//  1. live: a plain ListEvents client (generated code, every event decoded and discarded) and
//     `axarchive export` of the same store;
//  2. import: a plain AppendEvent client (generated code) of the same events, in transactions of the size
//     import uses, timed while it appends (it makes each transaction's structs off the clock), and
//     `axarchive import` of the archive, as it runs by default (verifying the archive first and comparing
//     the target with it afterwards) and with --no-verify --no-check (appending only), and
//     `axarchive import --segments` of the same archive (verifying it, then writing segment files at
//     Axon Server's segment size, no server);
//  3. offline: a pass that reads the segment files holding the same events and checks every block's CRC
//     (internal/reader, events discarded) and `axarchive export --segments`;
//  4. `axarchive verify` and `axarchive verify --quick` of the archive.
//
// It prints events/s, MB/s (of the events' protobuf bytes, the same in every row), the ratios the
// performance targets are stated in, peak RSS and peak Go heap (from GODEBUG=gctrace of the
// subprocess), and the archive's size per event and relative to the segment files. Run it with -events
// 1000000 and 5000000 to see that memory stays flat. Ratios from one run are what to compare: absolute
// figures drift on shared machines.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/segmenttest"
)

func main() {
	if runRole() {
		return
	}
	var cfg config
	flag.IntVar(&cfg.events, "events", 200_000, "number of generated events in the store")
	flag.Uint64Var(&cfg.seed, "seed", 1, "seed of the generated events")
	flag.StringVar(&cfg.target, "target", "double", "`double`: axarchive against plain gRPC clients on the in-process test double; real: against AxonIQ's Java connector on the real Axon Server")
	flag.StringVar(&cfg.stages, "stages", "", "stages to run (comma-separated; default all): live, verify, import, offline, s3 (not by default: export to a versitygw on loopback vs to a directory, plain and encrypted) for -target double (verify and import need live); export, import, copy for -target real")
	flag.Func("import-flag", "pass this flag to every axarchive import of -target real (repeatable), e.g. -import-flag=--max-transaction-events=1000", func(s string) error {
		cfg.importFlags = append(cfg.importFlags, s)
		return nil
	})
	flag.IntVar(&cfg.repeat, "repeat", 1, "run each measurement `N` times and keep the fastest")
	flag.StringVar(&cfg.work, "work", "", "work directory (default: a temporary directory, removed afterwards)")
	flag.StringVar(&cfg.binary, "axarchive", "", "use this axarchive binary instead of building cmd/axarchive")
	flag.Int64Var(&cfg.segmentSize, "segment-size", 256<<20, "size of the generated segment files (Axon Server's default)")
	flag.IntVar(&cfg.perBlock, "per-block", 1, "events per transaction (block) in the segment files")
	flag.StringVar(&cfg.profile, "profile", "", "write CPU and heap profiles of every axarchive run into `DIR`")
	flag.Parse()
	rep, err := run(cfg, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
	rep.write(os.Stdout)
}

type config struct {
	target      string
	importFlags []string
	events      int
	seed        uint64
	stages      string
	repeat      int
	work        string
	binary      string
	segmentSize int64
	perBlock    int
	profile     string
}

// measurement is one timed run of a subprocess.
type measurement struct {
	name     string
	records  int64
	elapsed  time.Duration
	maxRSS   int64 // bytes
	cpu      time.Duration
	peakHeap int64 // bytes, largest heap at the start of a GC (gctrace); 0 if unknown
	liveHeap int64 // bytes, largest heap marked live by a GC
	// serverCPU is the CPU time the real Axon Server used during the run (-target real), 0 otherwise.
	serverCPU time.Duration
	note      string
}

func (m *measurement) rate() float64 { return float64(m.records) / m.elapsed.Seconds() }

type report struct {
	cfg       config
	machine   string
	events    int64
	snapshots int64
	pbBytes   int64 // protobuf bytes of the events
	floorRSS  int64 // peak RSS reported for a process that does nothing
	rows      []row
	sizes     []string
	targets   []target
}

type row struct {
	stage string
	m     *measurement
	ratio string
}

type target struct {
	name, want, got string
	ok              bool
}

func run(cfg config, log io.Writer) (*report, error) {
	switch cfg.target {
	case "", "double":
		cfg.target = "double"
		if cfg.stages == "" {
			cfg.stages = "live,verify,import,offline"
		}
	case "real":
		if cfg.stages == "" {
			cfg.stages = "export,import,copy"
		}
	default:
		return nil, fmt.Errorf("unknown target %q (want double or real)", cfg.target)
	}
	stages := map[string]bool{}
	for _, s := range strings.Split(cfg.stages, ",") {
		switch s = strings.TrimSpace(s); s {
		case "export", "copy":
			if cfg.target != "real" {
				return nil, fmt.Errorf("stage %q is a stage of -target real", s)
			}
		case "live", "verify", "import", "offline", "s3":
			stages[s] = true
		case "":
		default:
			return nil, fmt.Errorf("unknown stage %q (want live, verify, import, offline, s3)", s)
		}
	}
	if stages["verify"] || stages["import"] {
		stages["live"] = true
	}
	if stages["s3"] {
		stages["offline"] = true // the s3 stage exports the offline stage's segment files
	}
	cfg.repeat = max(cfg.repeat, 1)
	if cfg.profile != "" {
		if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
			return nil, err
		}
	}
	work := cfg.work
	if work == "" {
		d, err := os.MkdirTemp("", "axarchive-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		work = d
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// First, while this process is small: see launch.go.
	if err := startLauncher(self); err != nil {
		return nil, err
	}
	defer stopLauncher()
	floor, err := runSelf(self, "noop", 0)
	if err != nil {
		return nil, err
	}
	bin := cfg.binary
	if bin == "" {
		bin = filepath.Join(work, "axarchive")
		logf(log, "building axarchive")
		build := exec.Command("go", "build", "-o", bin, "github.com/axarchive/axarchive/cmd/axarchive")
		build.Stdout, build.Stderr = log, log
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("build axarchive: %w", err)
		}
	}
	rep := &report{cfg: cfg, machine: machine(), floorRSS: floor.maxRSS}
	logf(log, "generating %d events (seed %d)", cfg.events, cfg.seed)
	gen := eventgen.New(cfg.seed, eventgen.Options{})
	events := gen.Generate(cfg.events)
	snaps := gen.Snapshots()
	rep.events, rep.snapshots = int64(len(events)), int64(len(snaps))
	for _, e := range events {
		rep.pbBytes += int64(len(e))
	}
	mb := func(m *measurement) float64 { return float64(rep.pbBytes) / (1 << 20) / m.elapsed.Seconds() }
	notes := func() {
		for i := range rep.rows {
			if rep.rows[i].m != nil && rep.rows[i].m.records == rep.events {
				rep.rows[i].m.note = fmt.Sprintf("%.0f MB/s", mb(rep.rows[i].m))
			}
		}
	}
	if cfg.target == "real" {
		events = nil // the loader generates its own
		if err := runReal(cfg, log, rep, self, bin, work, rep.events); err != nil {
			return nil, err
		}
		notes()
		return rep, nil
	}

	type run = timedRun
	interleaved := func(runs ...run) ([]*measurement, error) { return interleave(cfg.repeat, runs...) }

	// best is interleaved with one run: cfg.repeat times, the fastest kept.
	best := func(prepare func(i int) error, measure func(i int) (*measurement, error)) (*measurement, error) {
		ms, err := interleaved(run{prepare, measure})
		if err != nil {
			return nil, err
		}
		return ms[0], nil
	}

	archiveDir := filepath.Join(work, "archive")
	if stages["live"] {
		srv, err := axontest.Start()
		if err != nil {
			return nil, err
		}
		defer srv.Close()
		logf(log, "loading the test double")
		if err := srv.Load("default", events); err != nil {
			return nil, err
		}
		if err := srv.LoadSnapshots("default", snaps); err != nil {
			return nil, err
		}
		addr := srv.Addr()
		n := strconv.Itoa(cfg.events)

		logf(log, "live: plain ListEvents client and axarchive export, in turns")
		ms, err := interleaved(
			run{nil, func(int) (*measurement, error) {
				return runSelf(self, "list", rep.events, "-server", addr, "-events", n)
			}},
			run{func(int) error { return os.RemoveAll(archiveDir) }, func(int) (*measurement, error) {
				return runAxarchive(cfg, bin, "export", rep.events, "export", "--server", addr, "--context", "default", "-o", archiveDir, "--progress", "none")
			}})
		if err != nil {
			return nil, err
		}
		plain, exp := ms[0], ms[1]
		plain.name = "plain ListEvents client (generated code, decode + discard)"
		exp.name = "axarchive export (events + snapshots)"
		r := exp.rate() / plain.rate()
		rep.rows = append(rep.rows, row{"live", plain, ""}, row{"live", exp, fmt.Sprintf("%.2f× plain", r)})
		rep.targets = append(rep.targets,
			target{"live export vs plain ListEvents client", "≥ 1.0×", fmt.Sprintf("%.2f×", r), r >= 1.0},
			target{"export peak RSS", "≤ 128 MiB", mib(exp.maxRSS), exp.maxRSS <= 128<<20},
			target{"export live heap (largest heap a GC marked live)", "≤ 64 MiB", mib(exp.liveHeap), exp.liveHeap <= 64<<20})
		size, err := dirSize(archiveDir)
		if err != nil {
			return nil, err
		}
		rep.sizes = append(rep.sizes,
			fmt.Sprintf("events: %d, %s as protobuf (%.0f bytes/event); snapshots: %d", rep.events, mib(rep.pbBytes), float64(rep.pbBytes)/float64(rep.events), rep.snapshots),
			fmt.Sprintf("archive (live export): %s, %.1f bytes/event, %.3f× the protobuf bytes", mib(size), float64(size)/float64(rep.events), float64(size)/float64(rep.pbBytes)))

		if stages["verify"] {
			logf(log, "verify: full")
			full, err := best(nil, func(int) (*measurement, error) {
				return runAxarchive(cfg, bin, "verify", rep.events+rep.snapshots, "verify", archiveDir)
			})
			if err != nil {
				return nil, err
			}
			full.name = "axarchive verify (full)"
			logf(log, "verify: quick")
			quick, err := best(nil, func(int) (*measurement, error) {
				return runAxarchive(cfg, bin, "verify-quick", rep.events+rep.snapshots, "verify", "--quick", archiveDir)
			})
			if err != nil {
				return nil, err
			}
			quick.name = "axarchive verify --quick"
			rep.rows = append(rep.rows, row{"verify", full, ""}, row{"verify", quick, ""})
			rep.targets = append(rep.targets, target{"full verify", "≥ 150,000 records/s", fmt.Sprintf("%.0f records/s", full.rate()), full.rate() >= 150_000})
		}

		if stages["import"] {
			// The same transaction bounds as axarchive import with the server's default max-message-size.
			maxTxBytes := strconv.Itoa(4<<20 - 10000)
			maxTxEvents := strconv.Itoa(32767)
			// Each run appends to a context of its own, dropped afterwards: the test double would
			// otherwise hold every run's events, and the later runs would pay for its larger heap.
			drop := func(name string) {
				srv.DeleteContext(name)
				runtime.GC()
				debug.FreeOSMemory()
			}
			segImport := filepath.Join(work, "segment-import", "default")
			logf(log, "import: plain AppendEvent client, axarchive import, axarchive import --no-verify --no-check, axarchive import --segments, in turns")
			ms, err := interleaved(
				run{nil, func(i int) (*measurement, error) {
					defer drop(fmt.Sprintf("plain-%d", i))
					return runSelf(self, "append", rep.events, "-server", addr, "-context", fmt.Sprintf("plain-%d", i), "-events", n,
						"-seed", strconv.FormatUint(cfg.seed, 10), "-max-tx-bytes", maxTxBytes, "-max-tx-events", maxTxEvents)
				}},
				run{nil, func(i int) (*measurement, error) {
					defer drop(fmt.Sprintf("imported-%d", i))
					return runAxarchive(cfg, bin, "import", rep.events, "import", "--server", addr, "--context", fmt.Sprintf("imported-%d", i), "--progress", "none", archiveDir)
				}},
				run{nil, func(i int) (*measurement, error) {
					defer drop(fmt.Sprintf("appended-%d", i))
					return runAxarchive(cfg, bin, "import-append", rep.events, "import", "--server", addr, "--context", fmt.Sprintf("appended-%d", i), "--progress", "none", "--no-verify", "--no-check", archiveDir)
				}},
				run{func(int) error { return os.RemoveAll(filepath.Dir(segImport)) }, func(i int) (*measurement, error) {
					return runAxarchive(cfg, bin, "import-segments", rep.events, "import", "--segments", segImport, "--segment-size", strconv.FormatInt(cfg.segmentSize, 10), "--progress", "none", archiveDir)
				}})
			if err != nil {
				return nil, err
			}
			plainApp, imp, app, seg := ms[0], ms[1], ms[2], ms[3]
			plainApp.name = "plain AppendEvent client (generated code, timed while appending)"
			imp.name = "axarchive import (verify, append, compare: the default)"
			app.name = "axarchive import --no-verify --no-check (append only)"
			r := imp.rate() / plainApp.rate()
			ra := app.rate() / plainApp.rate()
			seg.name = "axarchive import --segments (verify, write segment files, read them back; no server)"
			rs := seg.rate() / imp.rate()
			rep.rows = append(rep.rows, row{"import", plainApp, ""}, row{"import", imp, fmt.Sprintf("%.2f× plain", r)},
				row{"import", app, fmt.Sprintf("%.2f× plain", ra)}, row{"import", seg, fmt.Sprintf("%.2f× import", rs)})
			rep.targets = append(rep.targets,
				target{"import (default: verify + append + compare) vs plain AppendEvent client", "≥ 0.8×", fmt.Sprintf("%.2f×", r), r >= 0.8},
				target{"import, append only (--no-verify --no-check) vs plain AppendEvent client", "≥ 0.8×", fmt.Sprintf("%.2f×", ra), ra >= 0.8},
				target{"import peak RSS", "≤ 128 MiB", mib(imp.maxRSS), imp.maxRSS <= 128<<20},
				target{"import --segments", "≥ 200,000 events/s", fmt.Sprintf("%.0f events/s", seg.rate()), seg.rate() >= 200_000},
				// No target against the double's import: the goal, 5×, is against the real server's import
				// (-target real), and the double answers far faster than the real server does.
				target{"import --segments peak RSS", "≤ 128 MiB", mib(seg.maxRSS), seg.maxRSS <= 128<<20})
		}
	}

	if stages["offline"] {
		segDir := filepath.Join(work, "segments", "default")
		if err := os.MkdirAll(segDir, 0o755); err != nil {
			return nil, err
		}
		logf(log, "offline: writing segment files")
		st, err := segmenttest.WriteStore(segDir, segmenttest.StoreOptions{
			Entries:     rep.events,
			PerBlock:    cfg.perBlock,
			SegmentSize: cfg.segmentSize,
			Event:       func(dst []byte, token int64) []byte { return append(dst, events[token]...) },
		})
		if err != nil {
			return nil, err
		}
		events = nil // the test double keeps its own references; the offline stage needs no more
		runtime.GC()
		logf(log, "offline: segment read + CRC pass")
		pass, err := best(nil, func(int) (*measurement, error) {
			return runSelf(self, "segread", rep.events, "-dir", segDir)
		})
		if err != nil {
			return nil, err
		}
		pass.name = "segment read + CRC pass (internal/reader, events discarded)"
		offDir := filepath.Join(work, "offline-archive")
		logf(log, "offline: axarchive export --segments")
		off, err := best(func(int) error { return os.RemoveAll(offDir) }, func(int) (*measurement, error) {
			return runAxarchive(cfg, bin, "export-segments", rep.events, "export", "--segments", segDir, "-o", offDir, "--progress", "none")
		})
		if err != nil {
			return nil, err
		}
		off.name = "axarchive export --segments"
		r := off.rate() / pass.rate()
		rep.rows = append(rep.rows, row{"offline", pass, ""}, row{"offline", off, fmt.Sprintf("%.2f× pass", r)})
		size, err := dirSize(offDir)
		if err != nil {
			return nil, err
		}
		sr := float64(size) / float64(st.DataBytes)
		rep.sizes = append(rep.sizes,
			fmt.Sprintf("segment files: %d, %s of data (%s on disk, pre-allocated); %d events per block", len(st.Files), mib(st.DataBytes), mib(int64(len(st.Files))*cfg.segmentSize), max(cfg.perBlock, 1)),
			fmt.Sprintf("archive (offline export): %s, %.1f bytes/event, %.3f× the segment data", mib(size), float64(size)/float64(rep.events), sr))
		if stages["s3"] {
			if err := runS3Stage(cfg, log, rep, bin, work, segDir); err != nil {
				return nil, err
			}
		}
		rep.targets = append(rep.targets,
			target{"offline export", "≥ 200,000 events/s", fmt.Sprintf("%.0f events/s", off.rate()), off.rate() >= 200_000},
			target{"offline export vs read + CRC pass", "≥ 0.5×", fmt.Sprintf("%.2f×", r), r >= 0.5},
			target{"offline export peak RSS", "≤ 128 MiB", mib(off.maxRSS), off.maxRSS <= 128<<20},
			target{"archive vs segment files", "≤ 0.2×", fmt.Sprintf("%.3f×", sr), sr <= 0.2})
	}
	notes()
	return rep, nil
}

// timedRun is one measurement of a comparison, with what has to happen before it, off the clock.
type timedRun struct {
	prepare func(i int) error
	measure func(i int) (*measurement, error)
}

// interleave runs each measurement repeat times, taking turns (a, b, a, b, ...), and keeps the fastest of
// each: the runs compared in a ratio then meet the same moods of a shared machine.
func interleave(repeat int, runs ...timedRun) ([]*measurement, error) {
	bests := make([]*measurement, len(runs))
	for i := range repeat {
		for k, r := range runs {
			if r.prepare != nil {
				if err := r.prepare(i); err != nil {
					return nil, err
				}
			}
			m, err := r.measure(i)
			if err != nil {
				return nil, err
			}
			if bests[k] == nil || m.elapsed < bests[k].elapsed {
				bests[k] = m
			}
		}
	}
	return bests, nil
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "bench: %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func machine() string {
	s := fmt.Sprintf("%s/%s, %d cores (GOMAXPROCS %d), %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				s += ", " + strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	return s
}

// runSelf runs a baseline role of this program and takes its own timing of its main loop.
func runSelf(self, role string, records int64, args ...string) (*measurement, error) {
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	m, out, err := runMeasured(cmd, records)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", role, err)
	}
	var res roleResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("%s: %w (output %q)", role, err, out)
	}
	if res.Events != records {
		return nil, fmt.Errorf("%s: handled %d events, want %d", role, res.Events, records)
	}
	m.elapsed = time.Duration(res.Elapsed)
	return m, nil
}

// runAxarchive runs the axarchive binary and times it from start to exit.
func runAxarchive(cfg config, bin, label string, records int64, args ...string) (*measurement, error) {
	cmd := exec.Command(bin, args...)
	if cfg.profile != "" {
		cmd.Env = append(os.Environ(),
			"AXARCHIVE_CPUPROFILE="+filepath.Join(cfg.profile, label+".cpu"),
			"AXARCHIVE_MEMPROFILE="+filepath.Join(cfg.profile, label+".mem"))
	}
	m, _, err := runMeasured(cmd, records)
	if err != nil {
		return nil, fmt.Errorf("axarchive %s: %w", strings.Join(args, " "), err)
	}
	return m, nil
}

var gcLine = regexp.MustCompile(`(\d+)->(\d+)->(\d+) MB`)

// runMeasured runs cmd with GODEBUG=gctrace=1 through the launcher, and returns its wall time, peak RSS
// and peak heap.
func runMeasured(cmd *exec.Cmd, records int64) (*measurement, []byte, error) {
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	res, err := launch(launchRequest{Args: cmd.Args, Path: cmd.Path, Env: append(env, "GODEBUG=gctrace=1")})
	if err != nil {
		return nil, nil, err
	}
	var other []string
	m := &measurement{records: records, elapsed: time.Duration(res.Elapsed), maxRSS: res.MaxRSS, cpu: time.Duration(res.CPU)}
	sc := bufio.NewScanner(bytes.NewReader(res.Stderr))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "gc ") {
			other = append(other, line)
			continue
		}
		if s := gcLine.FindStringSubmatch(line); s != nil {
			start, _ := strconv.ParseInt(s[1], 10, 64)
			live, _ := strconv.ParseInt(s[3], 10, 64)
			m.peakHeap = max(m.peakHeap, start<<20)
			m.liveHeap = max(m.liveHeap, live<<20)
		}
	}
	if res.Err != "" {
		return nil, nil, fmt.Errorf("%s: %s", res.Err, strings.Join(other, "\n"))
	}
	return m, res.Stdout, nil
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		n += fi.Size()
		return err
	})
	return n, err
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func (r *report) write(w io.Writer) {
	if r.cfg.target == "real" {
		fmt.Fprintf(w, "`go run ./internal/bench -target real -events %d -repeat %d` (stages %s", r.cfg.events, r.cfg.repeat, r.cfg.stages)
		if len(r.cfg.importFlags) > 0 {
			fmt.Fprintf(w, "; import flags %s", strings.Join(r.cfg.importFlags, " "))
		}
		fmt.Fprintf(w, ")\n\n")
	} else {
		fmt.Fprintf(w, "`go run ./internal/bench -events %d -repeat %d` (stages %s; %d events per segment block)\n\n", r.cfg.events, r.cfg.repeat, r.cfg.stages, max(r.cfg.perBlock, 1))
	}
	fmt.Fprintf(w, "machine: %s\n\n", r.machine)
	fmt.Fprintln(w, "| stage | run | records | time | records/s | MB/s | ratio | CPU | peak RSS | peak heap (live) |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
	for _, x := range r.rows {
		m := x.m
		heap := "-"
		if m.peakHeap > 0 {
			heap = fmt.Sprintf("%d MiB (%d)", m.peakHeap>>20, m.liveHeap>>20)
		}
		mbs := strings.TrimSuffix(m.note, " MB/s")
		if mbs == "" {
			mbs = "-"
		}
		cpu := fmt.Sprintf("%.2f s", m.cpu.Seconds())
		if m.serverCPU > 0 {
			cpu += fmt.Sprintf(" (server %.2f s)", m.serverCPU.Seconds())
		}
		fmt.Fprintf(w, "| %s | %s | %d | %.2f s | %.0f | %s | %s | %s | %s | %s |\n", x.stage, m.name, m.records, m.elapsed.Seconds(), m.rate(), mbs, x.ratio, cpu, mib(m.maxRSS), heap)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- CPU: user + system time of the process (for the baselines, including set-up off the clock); peak RSS as the OS reports it (rusage; a process that does nothing reports %s); peak heap: the largest Go heap when a GC started, and in parentheses the largest heap a GC marked live (GODEBUG=gctrace=1)\n", mib(r.floorRSS))
	for _, s := range r.sizes {
		fmt.Fprintf(w, "- %s\n", s)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | wanted | measured | |")
	fmt.Fprintln(w, "| --- | --- | --- | --- |")
	for _, t := range slices.Clip(r.targets) {
		mark := "met"
		if !t.ok {
			mark = "NOT met"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.name, t.want, t.got, mark)
	}
}
