package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/axarchive/axarchive/internal/s3store"
	"github.com/axarchive/axarchive/internal/s3test"
)

// The s3 stage (issue 19): the offline export of the same segment files into a directory and into a
// bucket of a versitygw on loopback, taking turns, plain and encrypted; and, as the ceiling the server
// sets, the same archive's files uploaded by themselves (s3store, one after the other, as the export
// commits them), with the server's CPU time beside each.

const benchBucket = "bench"

func runS3Stage(cfg config, log io.Writer, rep *report, bin, work, segDir string) error {
	gw := s3test.LookBinary()
	if gw == "" {
		return fmt.Errorf("stage s3 needs versitygw: go install github.com/versity/versitygw/cmd/versitygw@%s", s3test.Version)
	}
	if err := os.MkdirAll(filepath.Join(work, "s3"), 0o755); err != nil {
		return err
	}
	srv, err := s3test.Launch(gw, filepath.Join(work, "s3"))
	if err != nil {
		return err
	}
	defer srv.Stop()
	ctx := context.Background()
	if _, err := srv.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(benchBucket)}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	env := append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "AWS_REGION="+s3test.Region,
		"AWS_ENDPOINT_URL="+srv.Endpoint, "AWS_EC2_METADATA_DISABLED=true")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	recipient := id.Recipient().String()

	localDir := filepath.Join(work, "s3-local")
	measureExport := func(label, out string, onServer bool, extra ...string) func(int) (*measurement, error) {
		return func(i int) (*measurement, error) {
			o := out
			if strings.HasPrefix(out, "s3://") {
				o = fmt.Sprintf("%s-%d", out, i) // a fresh prefix each run
			}
			args := append([]string{"export", "--s3-path-style", "--segments", segDir, "-o", o, "--progress", "none"}, extra...)
			cmd := exec.Command(bin, args...)
			cmd.Env = env
			before := pidCPU(srv.PID())
			m, _, err := runMeasured(cmd, rep.events)
			if err != nil {
				return nil, fmt.Errorf("axarchive %s: %w", strings.Join(args, " "), err)
			}
			if onServer {
				m.serverCPU = pidCPU(srv.PID()) - before
			}
			m.name = label
			return m, nil
		}
	}
	clean := func(int) error { return os.RemoveAll(localDir) }
	logf(log, "s3: export --segments to a directory and to s3://, plain and encrypted, taking turns")
	ms, err := interleave(cfg.repeat,
		timedRun{clean, measureExport("export --segments -o DIR", localDir, false)},
		timedRun{nil, measureExport("export --segments -o s3://", "s3://"+benchBucket+"/plain", true)},
		timedRun{clean, measureExport("export --segments -o DIR --recipient", localDir, false, "--recipient", recipient)},
		timedRun{nil, measureExport("export --segments -o s3:// --recipient", "s3://"+benchBucket+"/sealed", true, "--recipient", recipient)},
	)
	if err != nil {
		return err
	}
	local, remote, localEnc, remoteEnc := ms[0], ms[1], ms[2], ms[3]

	// The ceiling: the files of a plain archive uploaded alone, one after the other, as the export
	// commits them.
	if err := clean(0); err != nil {
		return err
	}
	if _, err := measureExport("export --segments -o DIR", localDir, false)(0); err != nil {
		return err
	}
	upload, err := uploadDir(ctx, srv, localDir, rep.events)
	if err != nil {
		return err
	}

	ratio := remote.rate() / local.rate()
	rep.rows = append(rep.rows,
		row{"s3", local, ""},
		row{"s3", remote, fmt.Sprintf("%.2f× directory", ratio)},
		row{"s3", localEnc, fmt.Sprintf("%.2f× plain (encryption cost %.0f%%)", localEnc.rate()/local.rate(), 100*(1-localEnc.rate()/local.rate()))},
		row{"s3", remoteEnc, fmt.Sprintf("%.2f× plain (encryption cost %.0f%%)", remoteEnc.rate()/remote.rate(), 100*(1-remoteEnc.rate()/remote.rate()))},
		row{"s3", upload, fmt.Sprintf("export to s3:// took %.2f× this upload alone", remote.elapsed.Seconds()/upload.elapsed.Seconds())},
	)
	// Memory: an upload holds up to --s3-part-size × (--s3-parallel + 1) bytes (16 MiB × 5 by default)
	// beside what a local export holds, whatever the archive's size; compare the peak RSS across -events.
	rep.targets = append(rep.targets,
		target{"export to s3:// vs to a directory", "≥ 0.8×", fmt.Sprintf("%.2f×", ratio), ratio >= 0.8})
	return nil
}

// uploadDir uploads the files under dir into a fresh prefix with s3store, one at a time, and measures it
// (records: the events of the archive, for a comparable rate) with the server's CPU time.
func uploadDir(ctx context.Context, srv *s3test.Server, dir string, records int64) (*measurement, error) {
	st, err := s3store.New(ctx, "s3://"+benchBucket+"/upload", &s3store.Options{
		Endpoint: srv.Endpoint, PathStyle: true, Region: s3test.Region, Credentials: srv.Credentials(),
	})
	if err != nil {
		return nil, err
	}
	var files []string
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	}); err != nil {
		return nil, err
	}
	before := pidCPU(srv.PID())
	start := time.Now()
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		nf, err := st.Create(filepath.ToSlash(rel))
		if err == nil {
			_, err = io.Copy(nf, f)
			if err == nil {
				err = nf.Commit()
			}
			if err != nil {
				nf.Abort()
			}
		}
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("upload %s: %w", rel, err)
		}
	}
	return &measurement{name: fmt.Sprintf("upload of the archive's %d files alone (s3store, in this process)", len(files)),
		records: records, elapsed: time.Since(start), serverCPU: pidCPU(srv.PID()) - before}, nil
}

// pidCPU is the CPU time a process has used so far (user + system, from /proc), 0 if unknown.
func pidCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces: utime is the 12th and
	// stime the 13th of them, in clock ticks (100 per second on Linux).
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	k, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}
