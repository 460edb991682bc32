package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/axarchive/axarchive/internal/javapeer"
	"github.com/axarchive/axarchive/internal/realserver"
)

// The real-server target (-target real): axarchive against the peer users would pick instead, AxonIQ's
// Java connector (internal/javapeer's Copier), both against the real Axon Server SE, on fresh servers:
//
//  1. export: Copier `read` (stream every event and discard it) and `axarchive export` (events and
//     snapshots into an archive) of one source server;
//  2. import: Copier `append` (events read beforehand, appended 1,000 per transaction, one transaction at
//     a time) and `axarchive import` as it runs by default (verify, append, proof), appending only, and
//     by default of an events-only archive (the connector moves no snapshots), each into a fresh server;
//  3. copy: Copier `copy` (stream the source and append as it comes, 1,000 per transaction) into a fresh
//     server, and axarchive's export followed by its import (the sum of the two times).
//
// Copier times itself from after connecting to its last commit's confirmation (JVM start-up and, for
// append, reading the events beforehand, are off its clock); axarchive is timed from process start to
// exit. Each run gets a server of its own, started (15-30 s) and stopped off the clock.

// connectorBatch is the transaction size of the connector's appends: the 1,000 events per transaction the
// issue's figures were taken at.
const connectorBatch = "1000"

// realSession holds what the real-server stages share.
type realSession struct {
	cfg     config
	log     io.Writer
	work    string
	peer    *javapeer.Peer
	servers int // started so far, for directory names
}

// fresh starts a real Axon Server with an empty store.
func (rs *realSession) fresh(role string) (*realserver.Server, error) {
	rs.servers++
	dir := filepath.Join(rs.work, fmt.Sprintf("server-%02d-%s", rs.servers, role))
	logf(rs.log, "starting a real Axon Server (%s)", role)
	start := time.Now()
	srv, err := realserver.StartIn(dir)
	if err != nil {
		return nil, fmt.Errorf("real server for %s: %w", role, err)
	}
	logf(rs.log, "real Axon Server %s up in %s", srv.Addr(), time.Since(start).Round(100*time.Millisecond))
	return srv, nil
}

// done stops a server and removes its files.
func (rs *realSession) done(srv *realserver.Server) {
	if err := srv.Stop(); err != nil {
		_ = srv.Kill()
	}
	_ = os.RemoveAll(srv.Dir)
}

var copierLine = regexp.MustCompile(`^ok: (\w+) events=(\d+) seconds=([0-9.]+) `)

// copier runs the connector's Copier through the launcher and takes its own timing.
func (rs *realSession) copier(records int64, args ...string) (*measurement, error) {
	cmd := rs.peer.Command("Copier", args...)
	m, out, err := runMeasured(cmd, records)
	if err != nil {
		return nil, fmt.Errorf("Copier %s: %w", strings.Join(args, " "), err)
	}
	last := javapeer.LastLine(string(out))
	g := copierLine.FindStringSubmatch(last)
	if g == nil {
		return nil, fmt.Errorf("Copier %s: %q", strings.Join(args, " "), out)
	}
	if n, _ := strconv.ParseInt(g[2], 10, 64); n != records {
		return nil, fmt.Errorf("Copier %s: %d events, want %d", strings.Join(args, " "), n, records)
	}
	secs, err := strconv.ParseFloat(g[3], 64)
	if err != nil {
		return nil, err
	}
	m.elapsed = time.Duration(secs * float64(time.Second))
	return m, nil
}

// serverCPU is the CPU time the real server has used so far, 0 if unknown.
func serverCPU(srv *realserver.Server) time.Duration { return pidCPU(srv.PID()) }

// onServer runs measure with srv's CPU time counted, and notes it on the measurement.
func onServer(srv *realserver.Server, measure func() (*measurement, error)) (*measurement, error) {
	before := serverCPU(srv)
	m, err := measure()
	if err != nil {
		return nil, err
	}
	m.serverCPU = serverCPU(srv) - before
	return m, nil
}

func runReal(cfg config, log io.Writer, rep *report, self, bin, work string, n int64) error {
	stages := map[string]bool{}
	for _, s := range strings.Split(cfg.stages, ",") {
		switch s = strings.TrimSpace(s); s {
		case "export", "import", "copy":
			stages[s] = true
		case "":
		default:
			return fmt.Errorf("unknown stage %q for -target real (want export, import, copy)", s)
		}
	}
	if stages["copy"] {
		stages["import"] = true // axarchive's copy is its export plus its import
	}
	if stages["import"] {
		stages["export"] = true // the archive to import
	}
	if err := realserver.Available(); err != nil {
		return fmt.Errorf("-target real: %w", err)
	}
	logf(log, "building the Java connector's programs (Maven; cached in %s)", javapeer.DefaultCache())
	peer, err := javapeer.Build(javapeer.DefaultCache(), func(s string) { logf(log, "mvn: %s", s) })
	if err != nil {
		return err
	}
	rs := &realSession{cfg: cfg, log: log, work: work, peer: peer}
	// A loaded machine starts a server slowly; a benchmark would rather wait than lose what it measured.
	realserver.StartTimeout = max(realserver.StartTimeout, 10*time.Minute)

	src, err := rs.fresh("source")
	if err != nil {
		return err
	}
	defer rs.done(src)
	logf(log, "loading %d events and their snapshots into the source server", n)
	if _, err := runSelf(self, "append", n, "-server", src.Addr(), "-events", strconv.FormatInt(n, 10),
		"-seed", strconv.FormatUint(cfg.seed, 10), "-max-tx-bytes", strconv.Itoa(4<<20-10000), "-max-tx-events", "32767", "-snapshots"); err != nil {
		return fmt.Errorf("loading the source server: %w", err)
	}

	archiveDir := filepath.Join(work, "archive")
	type run = timedRun
	interleaved := func(runs ...run) ([]*measurement, error) { return interleave(cfg.repeat, runs...) }
	// onFresh measures a run that appends into a server of its own.
	onFresh := func(role string, measure func(dst *realserver.Server) (*measurement, error)) func(int) (*measurement, error) {
		return func(int) (*measurement, error) {
			dst, err := rs.fresh(role)
			if err != nil {
				return nil, err
			}
			defer rs.done(dst)
			return onServer(dst, func() (*measurement, error) { return measure(dst) })
		}
	}

	var exp *measurement
	if stages["export"] {
		logf(log, "export: the connector's stream and axarchive export, in turns")
		ms, err := interleaved(
			run{nil, func(int) (*measurement, error) {
				return onServer(src, func() (*measurement, error) { return rs.copier(n, "read", src.Addr()) })
			}},
			run{func(int) error { return os.RemoveAll(archiveDir) }, func(int) (*measurement, error) {
				return onServer(src, func() (*measurement, error) {
					return runAxarchive(cfg, bin, "real-export", n, "export", "--server", src.Addr(), "--context", "default", "-o", archiveDir, "--progress", "none")
				})
			}})
		if err != nil {
			return err
		}
		read := ms[0]
		exp = ms[1]
		read.name = "Java connector: stream every event (Copier read)"
		exp.name = "axarchive export (events + snapshots)"
		r := exp.rate() / read.rate()
		rep.rows = append(rep.rows, row{"real export", read, ""}, row{"real export", exp, fmt.Sprintf("%.2f× connector", r)})
		rep.targets = append(rep.targets, target{"real server: export vs the connector's stream", "≥ 1.0×", fmt.Sprintf("%.2f×", r), r >= 1.0})
	}

	// The connector moves events only: the same import of an archive without snapshots compares like
	// with like (the generated store has a snapshot for about every hundredth event, each a call of its
	// own).
	eventsOnlyDir := filepath.Join(work, "archive-events-only")
	if stages["import"] {
		logf(log, "export: an events-only archive (--snapshots none), untimed")
		if _, err := runAxarchive(cfg, bin, "real-export-events-only", n, "export", "--server", src.Addr(), "--context", "default", "-o", eventsOnlyDir, "--progress", "none", "--snapshots", "none"); err != nil {
			return err
		}
	}

	var imp, impEvents *measurement
	if stages["import"] {
		logf(log, "import: the connector's append, axarchive import, axarchive import --no-verify --no-check, an events-only import, and axarchive diff after an untimed append-only import, in turns, each into a fresh server")
		ms, err := interleaved(
			run{nil, onFresh("connector-append", func(dst *realserver.Server) (*measurement, error) {
				return rs.copier(n, "append", src.Addr(), dst.Addr(), connectorBatch)
			})},
			run{nil, onFresh("import", func(dst *realserver.Server) (*measurement, error) {
				return runAxarchive(cfg, bin, "real-import", n, append([]string{"import", "--server", dst.Addr(), "--context", "default", "--progress", "none"}, append(cfg.importFlags, archiveDir)...)...)
			})},
			run{nil, onFresh("import-append", func(dst *realserver.Server) (*measurement, error) {
				return runAxarchive(cfg, bin, "real-import-append", n, append([]string{"import", "--server", dst.Addr(), "--context", "default", "--progress", "none", "--no-verify", "--no-check"}, append(cfg.importFlags, archiveDir)...)...)
			})},
			run{nil, onFresh("import-events-only", func(dst *realserver.Server) (*measurement, error) {
				return runAxarchive(cfg, bin, "real-import-events-only", n, append([]string{"import", "--server", dst.Addr(), "--context", "default", "--progress", "none"}, append(cfg.importFlags, eventsOnlyDir)...)...)
			})},
			// The proof on its own: what the default import adds to the appending, on the same cores.
			run{nil, func(int) (*measurement, error) {
				dst, err := rs.fresh("proof")
				if err != nil {
					return nil, err
				}
				defer rs.done(dst)
				if _, err := runAxarchive(cfg, bin, "real-proof-load", n, append([]string{"import", "--server", dst.Addr(), "--context", "default", "--progress", "none", "--no-verify", "--no-check"}, append(cfg.importFlags, archiveDir)...)...); err != nil {
					return nil, err
				}
				return onServer(dst, func() (*measurement, error) {
					return runAxarchive(cfg, bin, "real-proof", n, "diff", "--server", dst.Addr(), "--context", "default", archiveDir)
				})
			}})
		if err != nil {
			return err
		}
		app, full, only, events, proof := ms[0], ms[1], ms[2], ms[3], ms[4]
		proof.name = "axarchive diff after an untimed append-only import (the default import's proof on its own)"
		events.name = "axarchive import of an events-only archive (verify, append, proof: the default)"
		re := events.rate() / app.rate()
		imp, impEvents = full, events
		app.name = fmt.Sprintf("Java connector: append, %s events per transaction (Copier append)", connectorBatch)
		full.name = "axarchive import (verify, append, proof: the default)"
		only.name = "axarchive import --no-verify --no-check (append only)"
		r := full.rate() / app.rate()
		ra := only.rate() / app.rate()
		rep.rows = append(rep.rows, row{"real import", app, ""}, row{"real import", full, fmt.Sprintf("%.2f× connector", r)},
			row{"real import", only, fmt.Sprintf("%.2f× connector", ra)}, row{"real import", events, fmt.Sprintf("%.2f× connector", re)},
			row{"real import", proof, ""})
		rep.targets = append(rep.targets,
			target{"real server: import (default, events and snapshots) vs the connector's append (events)", "≥ 1.0×", fmt.Sprintf("%.2f×", r), r >= 1.0},
			target{"real server: import (default) of events only vs the connector's append", "≥ 1.0×", fmt.Sprintf("%.2f×", re), re >= 1.0})
	}

	if stages["copy"] {
		logf(log, "copy: the connector's copy into fresh servers")
		ms, err := interleaved(run{nil, onFresh("connector-copy", func(dst *realserver.Server) (*measurement, error) {
			return rs.copier(n, "copy", src.Addr(), dst.Addr(), connectorBatch)
		})})
		if err != nil {
			return err
		}
		cp := ms[0]
		cp.name = fmt.Sprintf("Java connector: stream and append, %s events per transaction (Copier copy)", connectorBatch)
		both := &measurement{name: "axarchive export, then axarchive import (the default)", records: n,
			elapsed: exp.elapsed + imp.elapsed, cpu: exp.cpu + imp.cpu, maxRSS: max(exp.maxRSS, imp.maxRSS),
			serverCPU: exp.serverCPU + imp.serverCPU}
		r := both.rate() / cp.rate()
		// The export timed above reads the snapshots too: an events-only copy would export faster still.
		bothEvents := &measurement{name: "axarchive export, then import of an events-only archive", records: n,
			elapsed: exp.elapsed + impEvents.elapsed, cpu: exp.cpu + impEvents.cpu, maxRSS: max(exp.maxRSS, impEvents.maxRSS),
			serverCPU: exp.serverCPU + impEvents.serverCPU}
		re := bothEvents.rate() / cp.rate()
		// No target: the connector reads and appends at once, axarchive's copy is an archive made and then
		// replayed, with a verification and a proof.
		rep.rows = append(rep.rows, row{"real copy", cp, ""}, row{"real copy", both, fmt.Sprintf("%.2f× connector", r)},
			row{"real copy", bothEvents, fmt.Sprintf("%.2f× connector", re)})
	}
	rep.sizes = append(rep.sizes, fmt.Sprintf("real Axon Server: %s; every write run into a fresh server; server CPU: what the server process used during the run", realserver.JarName))
	return nil
}
