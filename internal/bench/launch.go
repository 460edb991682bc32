package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Linux charges a child process with the peak RSS of the process it was forked from (exec records the
// old address space's high-water mark in the child's rusage), so a subprocess started by the harness,
// which holds the generated store, would report the harness's RSS. Subprocesses are therefore started
// by a launcher: a small process of this program, started before the store is generated, which runs one
// command at a time and reports its wall time and rusage. What the launcher itself adds is the floor,
// measured by launching a process that does nothing.

type launchRequest struct {
	Path string   `json:"path"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
}

type launchResult struct {
	Elapsed int64  `json:"elapsedNanos"`
	MaxRSS  int64  `json:"maxRSS"`   // bytes
	CPU     int64  `json:"cpuNanos"` // user + system
	Stdout  []byte `json:"stdout"`
	Stderr  []byte `json:"stderr"`
	Err     string `json:"err,omitempty"`
}

var launcher struct {
	mu  sync.Mutex
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startLauncher starts the launcher process; stopLauncher ends it.
func startLauncher(self string) error {
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), roleEnv+"=launcher")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	launcher.cmd, launcher.in, launcher.out = cmd, in, bufio.NewReader(out)
	return nil
}

func stopLauncher() {
	if launcher.cmd != nil {
		launcher.in.Close()
		_ = launcher.cmd.Wait()
		launcher.cmd = nil
	}
}

func launch(req launchRequest) (*launchResult, error) {
	launcher.mu.Lock()
	defer launcher.mu.Unlock()
	if launcher.cmd == nil {
		return nil, fmt.Errorf("launcher not started")
	}
	b, _ := json.Marshal(req)
	if _, err := launcher.in.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("launcher: %w", err)
	}
	line, err := launcher.out.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("launcher: %w", err)
	}
	var res launchResult
	if err := json.Unmarshal(line, &res); err != nil {
		return nil, fmt.Errorf("launcher: %w", err)
	}
	return &res, nil
}

// serveLauncher is the launcher role: it runs each request read from stdin and writes its result.
func serveLauncher() {
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	enc := json.NewEncoder(os.Stdout)
	for {
		line, err := in.ReadBytes('\n')
		if err != nil {
			return
		}
		var req launchRequest
		var res launchResult
		if err := json.Unmarshal(line, &req); err != nil {
			res.Err = err.Error()
		} else {
			cmd := &exec.Cmd{Path: req.Path, Args: req.Args, Env: req.Env}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			res.Elapsed = int64(time.Since(start))
			res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
			if err != nil {
				res.Err = err.Error()
			}
			if cmd.ProcessState != nil {
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
					res.MaxRSS = int64(ru.Maxrss)
					res.CPU = ru.Utime.Nano() + ru.Stime.Nano()
					if runtime.GOOS != "darwin" {
						res.MaxRSS <<= 10 // KiB everywhere but macOS
					}
				}
			}
		}
		if err := enc.Encode(&res); err != nil {
			return
		}
	}
}
