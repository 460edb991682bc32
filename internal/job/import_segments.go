package job

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"filippo.io/age"
	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/reader"
	"github.com/axarchive/axarchive/internal/s3store"
	"github.com/axarchive/axarchive/internal/writer"
)

// SegmentOptions configure ImportSegments.
type SegmentOptions struct {
	// Dir is the directory the segment files go into: absent or empty, or, with Resume, the directory of
	// an interrupted run.
	Dir string
	// SegmentSize is the size of each file (0: writer.DefaultSegmentSize, Axon Server's default).
	SegmentSize int64
	// Identities decrypt encrypted archives.
	Identities []age.Identity
	// S3 configures the object store of archives given as s3:// URLs; nil: the AWS environment.
	S3 *s3store.Options
	// Resume continues an interrupted run in Dir.
	Resume bool
	// DryRun makes the plan and writes nothing.
	DryRun bool
	// NoSync skips fsync: for tests and benchmarks only.
	NoSync bool
	// Once the files are complete, and before the journal that marks the directory as no store yet is
	// removed, they are read back as a server will read them and compared with what was written (every
	// block intact, the same blocks in the same order, as many events and snapshots): NoCheck skips
	// that. Compare also compares every record read back with the archives' (CompareSegments), which
	// takes about as long again as the writing. A difference is a SegmentCheckError.
	NoCheck, Compare bool
	// Warn receives messages a person must see.
	Warn func(string)
	// Progress, if set, is updated while the import runs (Token is the next token to write).
	Progress *ImportProgress
}

// SegmentPlan is what ImportSegments will do, computed before anything is written.
type SegmentPlan struct {
	Archives              []string
	Dir                   string
	Events                int64
	Snapshots             int64
	FirstToken, LastToken int64
	// Grouped says that the archives record their source's transactions, which become the blocks;
	// otherwise every event is a transaction (a block) of its own.
	Grouped bool
	// Bytes estimates the data written: headers, blocks and markers of the events exactly (the
	// verification measured each event), the snapshots by the size of their JSON lines, which is
	// larger.
	Bytes int64
	// Free is what the file system of Dir has left for an unprivileged writer, -1 if unknown.
	Free int64
	// StartAt is the first token written (after a resume, where the interrupted run stopped).
	StartAt int64
	// ReadBack says that the files were read back and held what was written; Diff is the comparison
	// with the archives, with SegmentOptions.Compare.
	ReadBack bool
	Diff     *Diff
}

// SegmentCheckError is a check that found the files written other than they should be: the journal
// stays, so that no server is started on them. Diff is set when the comparison with the archives found
// the difference, Reason when reading the files back did.
type SegmentCheckError struct {
	Dir    string
	Reason string
	Diff   *Diff
}

func (e *SegmentCheckError) Error() string {
	if e.Diff == nil {
		return fmt.Sprintf("the segment files in %s are not what was written: %s", e.Dir, e.Reason)
	}
	n := int64(len(e.Diff.Differences)) + e.Diff.More
	what := "differences"
	if n == 1 {
		what = "difference"
	}
	return fmt.Sprintf("the segment files in %s differ from the archive (%d %s)", e.Dir, n, what)
}

// ErrNoSpace is returned when the file system of the directory has less room than the store needs.
var ErrNoSpace = errors.New("not enough free space")

// ErrSegmentsNotContiguous is returned for archives whose tokens cannot be the tokens of a store: a
// first token other than 0, gaps, a filter. It is an ErrNotContiguous.
var ErrSegmentsNotContiguous = fmt.Errorf("%w for segment files", ErrNotContiguous)

// ErrDirInArchive is returned for a segment directory inside an archive being imported.
var ErrDirInArchive = errors.New("segment directory inside an archive")

// ImportSegments writes the archives in dirs (one archive, or an incremental chain in order) as the
// segment files of a context into opts.Dir: events at their own tokens from 0, one block per recorded
// transaction, then the snapshots in archive order, all under temporary names until the store is
// complete. Before writing it verifies the archives, checks that their tokens start at 0 without a gap
// and that the directory is usable (empty, not inside an archive, enough free space).
func ImportSegments(ctx context.Context, dirs []string, opts SegmentOptions) (*SegmentPlan, error) {
	archives, err := OpenArchivesAt(ctx, dirs, opts.S3, opts.Identities...)
	if err != nil {
		return nil, err
	}
	progress := opts.Progress
	if progress == nil {
		progress = new(ImportProgress)
	}
	progress.Phase.Store("preflight")
	im := &importer{src: reader.NewArchiveSource(archives), archives: archives, dirs: dirs, progress: progress, opts: ImportOptions{Warn: opts.Warn}}
	plan := &SegmentPlan{Archives: dirs, Dir: opts.Dir, FirstToken: 0, LastToken: -1, Free: -1, Grouped: true}

	// The archives first: a damaged one is refused before the directory is touched.
	var eventBytes int64
	for i, a := range archives {
		rep, err := a.Verify(ctx, archive.VerifyOptions{Measure: encodedSize, Measured: func(_, size int64) { eventBytes += 4 + size }})
		if rep != nil && !rep.OK() {
			return plan, fmt.Errorf("verify %s: %w", dirs[i], rep.ErrFirst(maxImportProblems))
		}
		if err != nil {
			return plan, fmt.Errorf("verify %s: %w", dirs[i], err)
		}
	}
	if len(archives) > 1 {
		if err := archive.NewChain(archives...).Check(); err != nil {
			return plan, err // wraps archive.ErrChain (= ErrChain), each problem on a line of its own
		}
	}
	var snapshotBytes int64
	for i, a := range archives {
		m := a.Manifest()
		if i == 0 {
			plan.FirstToken = m.Events.Range.First
		}
		plan.LastToken = m.Events.Range.Last
		plan.Events += m.Events.Count
		plan.Snapshots += m.Snapshots.Count
		plan.Grouped = plan.Grouped && a.HasTransactions()
		switch {
		case m.Filter != nil:
			return plan, fmt.Errorf("%w: %s was exported with a filter, which left out %d tokens; segment files hold every token of a store (import it into a server with --renumber instead)", ErrSegmentsNotContiguous, dirs[i], m.Events.Filtered)
		case len(m.Gaps) > 0:
			g := m.Gaps[0]
			return plan, fmt.Errorf("%w: tokens %d-%d are missing from %s (%s); segment files cannot hold a gap (import it into a server with --renumber instead)", ErrSegmentsNotContiguous, g.From, g.To, dirs[i], g.Cause)
		}
		for _, c := range m.Chunks {
			if c.Stream == manifest.StreamSnapshots {
				snapshotBytes += c.RawSize
			}
		}
	}
	if plan.FirstToken != 0 {
		return plan, fmt.Errorf("%w: the archive starts at token %d; the files of a store start at token 0, and Axon Server numbers events by their place in the files (import it into a server with --renumber instead)", ErrSegmentsNotContiguous, plan.FirstToken)
	}
	if !plan.Grouped {
		for i, a := range archives {
			if !a.HasTransactions() {
				im.warn("%s does not record its source's transactions (a live export cannot see them): every event becomes a transaction of its own", dirs[i])
				break
			}
		}
	}
	segSize := opts.SegmentSize
	if segSize <= 0 {
		segSize = writer.DefaultSegmentSize
	}
	plan.Bytes = writer.SegmentBytes(eventBytes+snapshotBytes, plan.Events+plan.Snapshots, segSize)

	if err := checkDirOutsideArchives(opts.Dir, dirs); err != nil {
		return plan, err
	}
	if !opts.Resume {
		if err := writer.CheckSegmentDir(opts.Dir); err != nil {
			return plan, err
		}
	}
	if free, err := freeSpace(opts.Dir); err == nil {
		plan.Free = free
		if free < plan.Bytes && !opts.Resume {
			return plan, fmt.Errorf("%w: the store needs about %d bytes, the file system of %s has %d free", ErrNoSpace, plan.Bytes, opts.Dir, free)
		}
	}
	if opts.DryRun {
		return plan, nil
	}

	source := describeArchives(archives)
	sopts := writer.SegmentStoreOptions{SegmentSize: segSize, Source: source, NoSync: opts.NoSync}
	var store *writer.SegmentStore
	var checkErr error
	if !opts.NoCheck {
		sopts.Check = func() error {
			progress.Phase.Store("checking")
			events, snapshots := store.Written()
			why, err := readBack(ctx, opts.Dir, events, snapshots)
			switch {
			case err != nil:
				checkErr = &CheckError{Err: err}
				return checkErr
			case why != "":
				checkErr = &SegmentCheckError{Dir: opts.Dir, Reason: why}
				return checkErr
			case events.Entries != plan.LastToken+1 || snapshots.Entries != plan.Snapshots:
				checkErr = &SegmentCheckError{Dir: opts.Dir, Reason: fmt.Sprintf("%d events and %d snapshots were written, the archive has %d and %d",
					events.Entries, snapshots.Entries, plan.LastToken+1, plan.Snapshots)}
				return checkErr
			}
			plan.ReadBack = true
			if !opts.Compare {
				return nil
			}
			d, err := CompareSegments(ctx, opts.Dir, archives, CompareOptions{Progress: progress})
			if err != nil {
				checkErr = &CheckError{Err: err}
				return checkErr
			}
			plan.Diff = d
			if !d.Equal() {
				checkErr = &SegmentCheckError{Dir: opts.Dir, Diff: d}
				return checkErr
			}
			return nil
		}
	}
	if opts.Resume {
		store, err = writer.ResumeSegmentStore(opts.Dir, sopts)
	} else {
		store, err = writer.CreateSegmentStore(opts.Dir, sopts)
	}
	if err != nil {
		return plan, err
	}
	plan.StartAt = store.NextToken()
	if err := writeSegments(ctx, im, writer.NewSegmentSink(store), plan, progress); err != nil {
		store.Suspend()
		if checkErr != nil && errors.Is(err, checkErr) {
			return plan, err // the files are complete: what failed is the check
		}
		return plan, &SegmentProgressError{Dir: opts.Dir, NextToken: store.DurableToken(), Err: err}
	}
	return plan, nil
}

// SegmentProgressError is a failure after the directory was started: it stays resumable.
type SegmentProgressError struct {
	Dir       string
	NextToken int64 // the first token a resumed run writes
	Err       error
}

func (e *SegmentProgressError) Error() string {
	return fmt.Sprintf("segment import into %s stopped before token %d: %v", e.Dir, e.NextToken, e.Err)
}

func (e *SegmentProgressError) Unwrap() error { return e.Err }

func writeSegments(ctx context.Context, im *importer, store *writer.SegmentSink, plan *SegmentPlan, progress *ImportProgress) error {
	if !store.Renaming() && !store.EventsDone() {
		progress.Phase.Store("events")
		progress.Total.Store(plan.Events - store.NextToken())
		if err := writeSegmentEvents(ctx, im, store, plan, progress); err != nil {
			return err
		}
		if err := store.FinishEvents(); err != nil {
			return err
		}
	}
	if !store.Renaming() {
		progress.Phase.Store("snapshots")
		skip := store.NextSnapshot()
		var pos int64
		for _, a := range im.archives {
			it := a.Snapshots(ctx)
			err := func() error {
				defer it.Close()
				for it.Next() {
					if pos++; pos <= skip {
						continue
					}
					r, err := it.Record()
					if err != nil {
						return err
					}
					if err := store.WriteSnapshot(r); err != nil {
						return err
					}
					progress.Snapshots.Add(1)
				}
				return it.Err()
			}()
			if err != nil {
				return err
			}
		}
	}
	progress.Phase.Store("committing")
	return store.Close()
}

// writeSegmentEvents writes the events from the store's next token on, ending a transaction where the
// archive's grouping does (or after every event without one).
func writeSegmentEvents(ctx context.Context, im *importer, store *writer.SegmentSink, plan *SegmentPlan, progress *ImportProgress) error {
	from := store.NextToken()
	if from > plan.LastToken {
		return nil
	}
	groups := newTxEnds(ctx, im.archives)
	defer groups.close()
	return im.eachEncodedEvent(ctx, from, false, func(token int64, event []byte, _ eventAggregate) error {
		if token != store.NextToken() {
			return fmt.Errorf("%w: the archive has token %d where token %d is due", ErrNotContiguous, token, store.NextToken())
		}
		end := true
		if groups != nil {
			var err error
			if end, err = groups.ends(token); err != nil {
				return err
			}
		}
		if err := store.WriteEvent(token, event, end); err != nil {
			return err
		}
		progress.Events.Add(1)
		progress.Bytes.Add(int64(len(event)))
		progress.Token.Store(token)
		if end {
			progress.Transactions.Add(1)
		}
		return nil
	})
}

// describeArchives identifies the archives of an import for its journal: a resumed run must write the
// same ones.
func describeArchives(archives []*archive.Archive) string {
	var fps []string
	for _, a := range archives {
		fps = append(fps, a.Manifest().Fingerprint)
	}
	return "archives " + strings.Join(fps, " ")
}

// checkDirOutsideArchives refuses a segment directory inside one of the archives (or an archive inside
// it): writing there would change the archive being read.
func checkDirOutsideArchives(dir string, archives []string) error {
	d, err := resolvePath(dir)
	if err != nil {
		return fmt.Errorf("segment directory: %w", err)
	}
	for _, a := range archives {
		ad, err := resolvePath(a)
		if err != nil {
			return fmt.Errorf("archive directory: %w", err)
		}
		if within(d, ad) || within(ad, d) {
			return fmt.Errorf("%w: %s and the archive %s overlap; write the segment files elsewhere", ErrDirInArchive, dir, a)
		}
	}
	return nil
}

func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// resolvePath makes path absolute with the symbolic links of its existing part resolved, so that two
// names of one directory compare equal.
func resolvePath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest), nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// freeSpace returns the bytes an unprivileged writer may still use on the file system of path (or of
// its nearest existing parent).
func freeSpace(path string) (int64, error) {
	p, err := resolvePath(path)
	if err != nil {
		return 0, err
	}
	for {
		if _, err := os.Stat(p); err == nil {
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(p, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
