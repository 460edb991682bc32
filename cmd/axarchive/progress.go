package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressMode says how a long-running command reports progress on stderr.
type progressMode int

const (
	progressAuto  progressMode = iota // a live line on a terminal, one summary line otherwise
	progressJSON                      // one JSON object per interval, for schedulers
	progressQuiet                     // nothing but errors and warnings
)

func parseProgressMode(s string, quiet bool) (progressMode, error) {
	if quiet {
		return progressQuiet, nil
	}
	switch s {
	case "", "auto":
		return progressAuto, nil
	case "json":
		return progressJSON, nil
	case "none":
		return progressQuiet, nil
	}
	return 0, usageErrorf("--progress must be auto, json or none, not %q", s)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressSample is what a command reports at each tick.
type progressSample struct {
	Phase   string  `json:"phase"`
	Records int64   `json:"records"`
	Bytes   int64   `json:"bytes"`
	Token   int64   `json:"token"`
	Percent float64 `json:"percent"`
	Rate    float64 `json:"recordsPerSecond"`
	MBps    float64 `json:"megabytesPerSecond"`
	ETA     float64 `json:"etaSeconds"`
	Elapsed float64 `json:"elapsedSeconds"`
	Detail  string  `json:"detail,omitempty"`
}

// progressReporter samples a command's counters a few times a second and prints them.
type progressReporter struct {
	w      io.Writer
	mode   progressMode
	live   bool
	sample func() progressSample
	start  time.Time
	stop   chan struct{}
	done   sync.WaitGroup
	mu     sync.Mutex // serialises the live line with warnings
	shown  bool
}

func startProgress(w io.Writer, mode progressMode, sample func() progressSample) *progressReporter {
	p := &progressReporter{w: w, mode: mode, sample: sample, start: time.Now(), stop: make(chan struct{})}
	p.live = mode == progressAuto && isTerminal(w)
	if p.live || mode == progressJSON {
		interval := 250 * time.Millisecond
		if mode == progressJSON {
			interval = time.Second
		}
		p.done.Add(1)
		go p.loop(interval)
	}
	return p
}

func (p *progressReporter) loop(interval time.Duration) {
	defer p.done.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.print(p.fill(p.sample()))
		case <-p.stop:
			return
		}
	}
}

func (p *progressReporter) fill(s progressSample) progressSample {
	el := time.Since(p.start).Seconds()
	s.Elapsed = el
	if el > 0 {
		s.Rate = float64(s.Records) / el
		s.MBps = float64(s.Bytes) / el / 1e6
	}
	if s.Percent > 0 && s.Percent < 100 {
		s.ETA = el * (100 - s.Percent) / s.Percent
	}
	return s
}

func (p *progressReporter) print(s progressSample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == progressJSON {
		b, _ := json.Marshal(s)
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	line := fmt.Sprintf("%s: %d records, %.0f/s, %.1f MB/s", s.Phase, s.Records, s.Rate, s.MBps)
	if s.Percent > 0 {
		line += fmt.Sprintf(", %.1f%%", s.Percent)
		if s.ETA > 0 {
			line += ", ETA " + (time.Duration(s.ETA) * time.Second).Round(time.Second).String()
		}
	}
	if s.Detail != "" {
		line += ", " + s.Detail
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.shown = true
}

// warn prints a warning without garbling the live line.
func (p *progressReporter) warn(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "axarchive: warning: %s\n", strings.TrimSpace(msg))
}

// finish stops the ticker and clears the live line; the command prints its own summary.
func (p *progressReporter) finish() {
	close(p.stop)
	p.done.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == progressJSON {
		b, _ := json.Marshal(p.fill(p.sample()))
		fmt.Fprintf(p.w, "%s\n", b)
	}
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// quiet reports whether the command should not print its summary line.
func (p *progressReporter) quiet() bool { return p.mode == progressQuiet }

func percent(done, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return 100 * float64(done) / float64(total)
}
