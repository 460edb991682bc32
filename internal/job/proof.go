package job

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/reader"
)

// Diff is the verdict of Compare.
type Diff struct {
	Events, Snapshots int64 // records compared
	// Differences lists the first differences found, each naming the token or position.
	Differences []string
	// More counts differences found beyond those listed.
	More int64
	// ArchiveFingerprint is the archive's (chain's last) manifest fingerprint; TargetFingerprint is the
	// fingerprint of the same records as the target serves them, computed the way SPEC.md defines it.
	ArchiveFingerprint, TargetFingerprint string
	// SnapshotFlagOnly is set when snapshot records differ only in the flag the server sets when it
	// serves a snapshot (archives made from segment files do not have it).
	SnapshotFlagOnly bool
	TargetHead       int64
}

// Equal reports whether no difference was found.
func (d *Diff) Equal() bool { return len(d.Differences) == 0 && d.More == 0 }

func (d *Diff) add(maxDiffs int, format string, args ...any) {
	if len(d.Differences) < maxDiffs {
		d.Differences = append(d.Differences, fmt.Sprintf(format, args...))
		return
	}
	d.More++
}

// CompareOptions tune Compare.
type CompareOptions struct {
	// MaxDifferences bounds the differences listed (default 20).
	MaxDifferences int
	// TargetFirst is the target token of the archive's first event; -1 (or unset through Compare's
	// defaults) means the archive's own first token. Renumbered imports pass the token map's first target.
	TargetFirst *int64
	// Progress, if set, counts events compared.
	Progress *ImportProgress
	// AfterImport, if set, makes the comparison follow an import that is still sending: it reads the
	// target's events as they are committed, up to the archive's last (ListEvents waits at the head), and
	// does what needs the import finished (the target's head, the snapshots) once AfterImport is closed.
	// An import that fails must cancel the comparison's context instead.
	AfterImport <-chan struct{}
	// Committed, if set with AfterImport, returns the target's head as the import last saw it confirmed:
	// the comparison then reads the target's events only up to it, one stream per stretch, and never
	// keeps a stream waiting at the head, where Axon Server re-polls it every 100 ms and wakes it on every
	// append (AXON.md 2.2): work for the server while it should be committing the import's appends.
	Committed func() int64
	// Warn, if set, hears of a lost event stream that the comparison re-opens.
	Warn func(string)
	// MaxRetries bounds how many times in a row a lost event stream is re-opened without progress; 0 means
	// DefaultCheckRetries, a negative value none.
	MaxRetries int
}

// Compare streams the target context and compares it with the archives (one archive or a chain), event
// by event (token, identity and bytes) and snapshot by snapshot.
func Compare(ctx context.Context, conn *axonclient.Conn, dirs []string, opts CompareOptions) (*Diff, error) {
	archives, err := OpenArchives(dirs)
	if err != nil {
		return nil, err
	}
	return CompareArchives(ctx, conn, archives, opts)
}

// CompareArchives is Compare of archives already open.
func CompareArchives(ctx context.Context, conn *axonclient.Conn, archives []*archive.Archive, opts CompareOptions) (*Diff, error) {
	if opts.MaxDifferences <= 0 {
		opts.MaxDifferences = 20
	}
	switch {
	case opts.MaxRetries == 0:
		opts.MaxRetries = DefaultCheckRetries
	case opts.MaxRetries < 0:
		opts.MaxRetries = 0
	}
	im := newImporter(conn, archives, ImportOptions{})
	first := im.archives[0].Manifest().Events.Range.First
	last := im.archives[len(im.archives)-1].Manifest().Events.Range.Last
	d := &Diff{ArchiveFingerprint: im.archives[len(im.archives)-1].Manifest().Fingerprint}
	following := opts.AfterImport != nil
	readHead := func(ctx context.Context) (int64, error) {
		head, err := conn.LastToken(ctx)
		if err != nil {
			return 0, fmt.Errorf("read the target's head: %w", err)
		}
		d.TargetHead = head
		return head, nil
	}
	var head int64
	if !following {
		var err error
		if head, err = readHead(ctx); err != nil {
			return nil, err
		}
	}
	// Without renumbering every event must sit at its own token. A renumbered import put the archive's
	// events, gaps closed, at consecutive target tokens from TargetFirst.
	renumbered := opts.TargetFirst != nil
	targetFirst, targetLast := first, last
	if renumbered {
		var count int64
		for _, a := range im.archives {
			count += a.Manifest().Events.Count
		}
		targetFirst = *opts.TargetFirst
		targetLast = targetFirst + count - 1
	}
	fp := new(archive.Fingerprint)

	if targetLast >= targetFirst {
		streamTo := targetLast // following: the import will have sent them all when it succeeds
		if !following {
			if head < targetLast {
				d.add(opts.MaxDifferences, "the target ends at token %d, the archive at token %d: %d events missing", head, targetLast, targetLast-head)
			}
			streamTo = min(head, targetLast)
		}
		var warn func(string)
		if opts.Warn != nil {
			warn = func(msg string) { opts.Warn("check: " + msg) }
		}
		var committed func() int64
		if following {
			committed = opts.Committed
		}
		var counted *atomic.Int64
		if opts.Progress != nil {
			counted = &opts.Progress.Events
		}
		p, pctx := startEventProof(ctx, im, first, d, fp, &opts, counted, renumbered)
		err := compareTarget(pctx, conn, targetFirst, streamTo, opts.MaxRetries, warn, committed, p.compare)
		if err := p.finish(err); err != nil {
			return nil, err
		}
	}
	if following {
		select {
		case <-opts.AfterImport:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var err error
		if head, err = readHead(ctx); err != nil {
			return nil, err
		}
	}
	if head > targetLast && targetLast >= targetFirst {
		d.add(opts.MaxDifferences, "the target has %d events after the archive's last token %d", head-targetLast, targetLast)
	}

	// Snapshots: every archive snapshot must be in the target, in the aggregate's order.
	if err := compareSnapshots(ctx, conn, im, d, fp, opts.MaxDifferences); err != nil {
		return nil, err
	}
	d.TargetFingerprint = fp.Sum()
	return d, nil
}

// eventProof compares a target's events, handed to compare in token order with their canonical lines,
// with the archives' events. The archive's lines are compared with the target's events converted to
// lines, so that the archive is read without parsing (a line is parsed only to describe a difference);
// the canonical line of an event is unique, so equal lines (tokens aside) are equal events. The
// archives are read ahead on a goroutine of their own.
type eventProof struct {
	d          *Diff
	opts       *CompareOptions
	counted    *atomic.Int64 // events compared, for progress; nil: not counted
	fp         *archive.Fingerprint
	renumbered bool // the target's tokens are not the archive's
	lines      chan *lineBatch
	free       chan *lineBatch
	batch      *lineBatch
	next       int // index of the next line in batch
	readErr    chan error
	cancel     context.CancelFunc
}

// startEventProof starts reading the archives' events from token from. The target's events must be read
// with the context it returns, and finish called after them.
func startEventProof(ctx context.Context, im *importer, from int64, d *Diff, fp *archive.Fingerprint, opts *CompareOptions, counted *atomic.Int64, renumbered bool) (*eventProof, context.Context) {
	p := &eventProof{d: d, opts: opts, counted: counted, fp: fp, renumbered: renumbered,
		lines: make(chan *lineBatch, 4), free: make(chan *lineBatch, 6), readErr: make(chan error, 1)}
	for range cap(p.free) {
		p.free <- new(lineBatch)
	}
	ctx, p.cancel = context.WithCancel(ctx)
	go func() {
		defer close(p.lines)
		p.readErr <- im.eachLine(ctx, from, p.lines, p.free)
	}()
	return p, ctx
}

// nextLine returns the archive's next event, false after the last.
func (p *eventProof) nextLine() (int64, []byte, bool) {
	if p.batch != nil && p.next == len(p.batch.tokens) {
		p.free <- p.batch
		p.batch = nil
	}
	if p.batch == nil {
		var ok bool
		if p.batch, ok = <-p.lines; !ok {
			return 0, nil, false
		}
		p.next = 0
	}
	start := 0
	if p.next > 0 {
		start = p.batch.ends[p.next-1]
	}
	p.next++
	return p.batch.tokens[p.next-1], p.batch.lines[start:p.batch.ends[p.next-1]], true
}

// compare takes the target's next event: its token, its bytes, and its canonical line or the error
// converting it.
func (p *eventProof) compare(token int64, raw, line []byte, decodeErr error) error {
	d, maxDiffs := p.d, p.opts.MaxDifferences
	wantToken, wantLine, ok := p.nextLine()
	if !ok {
		d.add(maxDiffs, "token %d: in the target, not in the archive", token)
		return nil
	}
	d.Events++
	if p.counted != nil {
		p.counted.Add(1)
	}
	if decodeErr != nil {
		d.add(maxDiffs, "token %d: the target's event cannot be read exactly: %v", token, decodeErr)
		return nil
	}
	p.fp.WriteEventLine(line)
	if !p.renumbered && wantToken != token {
		d.add(maxDiffs, "token %d: the target holds it where the archive has token %d", token, wantToken)
		return nil
	}
	if !bytes.Equal(afterToken(line), afterToken(wantLine)) {
		var want, got archive.Record
		if err := archive.ParseEventJSON(wantLine, &want); err != nil {
			return fmt.Errorf("the archive's event at token %d: %w", wantToken, err)
		}
		if err := codec.Decode(raw, &got); err != nil {
			return err // decoded once already
		}
		d.add(maxDiffs, "token %d: %s", token, describeDifference(codec.Encode(nil, &want), codec.Encode(nil, &got)))
	}
	return nil
}

// finish stops reading the archives and returns err, the error of reading the target's events, or else
// the error reading the archives.
func (p *eventProof) finish(err error) error {
	p.cancel()
	if p.batch != nil {
		p.free <- p.batch
		p.batch = nil
	}
	for b := range p.lines {
		p.free <- b
	}
	rerr := <-p.readErr
	if err != nil {
		return err
	}
	if rerr != nil && !errors.Is(rerr, context.Canceled) {
		return rerr
	}
	return nil
}

// lineBatch carries archive event lines, as they are in the archive, to Compare.
type lineBatch struct {
	tokens []int64
	lines  []byte
	ends   []int // lines[ends[i-1]:ends[i]] is line i
}

// lineBatchSize bounds the lines of one lineBatch: channel hand-offs then cost nothing per event.
const lineBatchSize = 256

// eachLine sends the archive's event lines from token from on, across the chain, in batches taken from
// free, to out.
func (im *importer) eachLine(ctx context.Context, from int64, out chan<- *lineBatch, free chan *lineBatch) error {
	var b *lineBatch
	send := func() error {
		select {
		case out <- b:
			b = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := im.src.Events(ctx, from, math.MaxInt64, func(e reader.Event) error {
		if b == nil {
			select {
			case b = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			b.tokens, b.lines, b.ends = b.tokens[:0], b.lines[:0], b.ends[:0]
		}
		b.tokens = append(b.tokens, e.Token)
		b.lines = append(b.lines, e.Line...)
		b.ends = append(b.ends, len(b.lines))
		if len(b.tokens) == lineBatchSize {
			return send()
		}
		return nil
	})
	if err == nil && b != nil && len(b.tokens) > 0 {
		err = send()
	}
	return err
}

// afterToken returns a canonical event line from the comma after its token on.
func afterToken(line []byte) []byte {
	if i := bytes.IndexByte(line, ','); i >= 0 {
		return line[i:]
	}
	return line
}

func compareSnapshots(ctx context.Context, conn *axonclient.Conn, im *importer, d *Diff, fp *archive.Fingerprint, maxDiffs int) error {
	target := map[string][]archive.Record{} // per aggregate, oldest first, not yet matched
	// Aggregates whose every target snapshot must be in the archive (mode all): in mode latest the
	// archive holds only the newest, which is the only one compared.
	complete := map[string]bool{}
	var line []byte
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for item := range readSnapshotsAhead(ctx, conn, im) {
		if item.err != nil {
			return item.err
		}
		want := item.rec
		d.Snapshots++
		list := target[want.AggregateID]
		if f := item.fetch; f != nil { // the aggregate's first snapshot in the archive
			<-f.done
			if f.err != nil {
				return fmt.Errorf("read the target's snapshots of %q: %w", want.AggregateID, f.err)
			}
			for k := len(f.raws) - 1; k >= 0; k-- {
				var r archive.Record
				if err := codec.Decode(f.raws[k], &r); err != nil {
					d.add(maxDiffs, "aggregate %q: a target snapshot cannot be read exactly: %v", want.AggregateID, err)
					continue
				}
				list = append(list, r)
			}
			if item.latestOnly && len(list) > 1 {
				list = list[len(list)-1:]
			}
			complete[want.AggregateID] = !item.latestOnly
		}
		if len(list) == 0 {
			d.add(maxDiffs, "snapshot position %d (aggregate %q, sequence %d): not in the target", want.Token, want.AggregateID, want.Sequence)
			target[want.AggregateID] = list
			continue
		}
		got := list[0]
		target[want.AggregateID] = list[1:]
		got.Token = want.Token
		line = archive.AppendSnapshotJSON(line[:0], &got)
		fp.WriteSnapshotLine(line)
		if got.Snapshot != want.Snapshot {
			d.SnapshotFlagOnly = true
			got.Snapshot = want.Snapshot
		}
		if g, w := codec.Encode(nil, &got), codec.Encode(nil, want); string(g) != string(w) {
			d.add(maxDiffs, "snapshot position %d (aggregate %q): %s", want.Token, want.AggregateID, describeDifference(w, g))
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Snapshots the target holds beyond the archive's, for the aggregates compared. (The snapshots of
	// other aggregates cannot be listed over gRPC.)
	ids := make([]string, 0, len(target))
	for id, rest := range target {
		if complete[id] && len(rest) > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		for _, r := range target[id] {
			d.add(maxDiffs, "aggregate %q: a snapshot of sequence %d is in the target, not in the archive", id, r.Sequence)
		}
	}
	return nil
}

// snapshotFetch is the target's snapshots of one aggregate, read ahead of the comparison.
type snapshotFetch struct {
	aggregate string
	raws      [][]byte
	err       error
	done      chan struct{}
}

// snapshotItem is one archive snapshot on its way to the comparison, with the fetch of the target's
// snapshots of its aggregate when it is the aggregate's first; or the error that ended the reading.
type snapshotItem struct {
	rec        *archive.Record
	latestOnly bool // its archive holds only each aggregate's newest snapshot
	fetch      *snapshotFetch
	err        error
}

// snapshotReaders bounds the ListAggregateSnapshots calls the comparison has in flight: each is a round
// trip for one aggregate, so the phase is bound by latency (as a live export's, see reader.SnapshotReaders).
const snapshotReaders = 32

// readSnapshotsAhead reads the archives' snapshots in order and, for each aggregate the first time it
// appears, starts reading the target's snapshots of it, snapshotReaders at a time. The items come out of
// the channel in the archives' order; an error reading an archive is the last item. It holds at most
// 2×snapshotReaders items, and stops when ctx ends.
func readSnapshotsAhead(ctx context.Context, conn *axonclient.Conn, im *importer) <-chan snapshotItem {
	out := make(chan snapshotItem, snapshotReaders)
	go func() {
		defer close(out)
		send := func(item snapshotItem) bool {
			select {
			case out <- item:
				return true
			case <-ctx.Done():
				return false
			}
		}
		sem := make(chan struct{}, snapshotReaders)
		seen := map[string]bool{}
		err := im.eachSnapshot(ctx, func(a *archive.Archive, r *archive.Record) error {
			rec := *r // the iterator's record changes with the next line
			item := snapshotItem{rec: &rec, latestOnly: a.Manifest().Snapshots.Mode == manifest.SnapshotsLatest}
			if !seen[rec.AggregateID] {
				seen[rec.AggregateID] = true
				f := &snapshotFetch{aggregate: rec.AggregateID, done: make(chan struct{})}
				item.fetch = f
				sem <- struct{}{}
				go func() {
					defer func() { <-sem; close(f.done) }()
					f.raws, f.err = conn.ListAggregateSnapshots(ctx, f.aggregate, 0, math.MaxInt64, 0)
				}()
			}
			if !send(item) {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			send(snapshotItem{err: err})
		}
	}()
	return out
}

// compareTarget streams the target's events from..to and calls fn with each, in token order, with its
// canonical line (or the error decoding it), converting on all cores. The slices passed to fn are valid
// only during the call.
// With committed set, it reads only what committed says the target holds, waiting for more.
func compareTarget(ctx context.Context, conn *axonclient.Conn, from, to int64, retries int, warn func(string), committed func() int64, fn func(token int64, raw, line []byte, decodeErr error) error) error {
	err, streamErr := compareStream(ctx, func(f *feed) error {
		add := func(token int64, raw []byte) error {
			_, err := f.add(token, raw, false)
			return err
		}
		if committed != nil {
			// A stretch's last events are compared now, not once the next stretch fills their batch.
			return followCommitted(f.ctx, conn, from, to, retries, warn, committed, f.flush, add)
		}
		return streamTarget(f.ctx, conn, from, to, retries, warn, add)
	}, fn)
	if err != nil {
		return err
	}
	if streamErr != nil {
		return fmt.Errorf("read the target's events: %w", streamErr)
	}
	return nil
}

// compareStream runs the events produce adds through the pipeline, converting each to its canonical line
// on all cores, and calls fn with each in token order. It returns fn's error and produce's.
func compareStream(ctx context.Context, produce func(f *feed) error, fn func(token int64, raw, line []byte, decodeErr error) error) (err, produceErr error) {
	convert := toLines(nil, false, true)
	return pipeline(ctx, proofBatch, 0, func() func(*batch) { return convert }, produce, func(b *batch) error {
		start, lstart := 0, 0
		for i, end := range b.ends {
			if err := fn(b.tokens[i], b.in[start:end], b.out[lstart:b.outEnds[i]], b.errs[i]); err != nil {
				return err
			}
			start, lstart = end, b.outEnds[i]
		}
		return nil
	})
}

// DefaultCheckRetries is CompareOptions.MaxRetries when it is 0: with the backoff (200 ms doubling up to
// 10 s, as export's) about a minute of a server that does not answer, which a restart of Axon Server takes.
const DefaultCheckRetries = 10

// streamTarget reads the target's events from..to (inclusive) and stops, re-opening a lost stream where it
// stopped: a check that follows an import must ride out what the import rides out (a server restart
// between transactions). warn, if set, hears of each re-open.
func streamTarget(ctx context.Context, conn *axonclient.Conn, from, to int64, retries int, warn func(string), fn func(int64, []byte) error) error {
	return conn.ReadRange(ctx, from, to, axonclient.RangeOptions{
		// Permits bound what the server may have sent ahead of the comparison: ~14 MB of typical events,
		// export's window. Fewer, larger permit grants are what the real server handles best (one run
		// each of a diff of 1,000,000 events: 2,048 took it 12.2 s of CPU and 11.2 s, 20,000 11.9 s and
		// 10.5 s).
		Window:     20000,
		MaxRetries: retries,
		MaxBackoff: 10 * time.Second, // export's: --retries means the same wait for every command
		Warn:       warn,
	}, fn)
}

// followPoll is how often followCommitted looks whether the import has committed more: a transaction takes
// longer than that to commit.
const followPoll = 5 * time.Millisecond

// followCommitted reads the target's events from..to as streamTarget does, in stretches that end at what
// committed reports, so that no stream waits at the target's head.
// endStretch is called after each stretch.
func followCommitted(ctx context.Context, conn *axonclient.Conn, from, to int64, retries int, warn func(string), committed func() int64, endStretch func() error, fn func(int64, []byte) error) error {
	next := from
	for next <= to {
		upTo := min(committed(), to)
		if upTo < next {
			select {
			case <-time.After(followPoll):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := streamTarget(ctx, conn, next, upTo, retries, warn, fn); err != nil {
			return err
		}
		if err := endStretch(); err != nil {
			return err
		}
		next = upTo + 1
	}
	return nil
}

// readTargetEvent returns the raw bytes of the target's event at token.
func readTargetEvent(ctx context.Context, conn *axonclient.Conn, token int64) ([]byte, error) {
	var got []byte
	err := streamTarget(ctx, conn, token, token, DefaultCheckRetries, nil, func(t int64, raw []byte) error {
		if t != token {
			return fmt.Errorf("asked for token %d, the server sent %d", token, t)
		}
		got = append([]byte(nil), raw...)
		return nil
	})
	return got, err
}

// describeDifference says which fields of two events differ, for a person.
func describeDifference(want, got []byte) string {
	var w, g archive.Record
	if codec.Decode(want, &w) != nil || codec.Decode(got, &g) != nil {
		return "the bytes differ"
	}
	var diffs []string
	check := func(name string, equal bool) {
		if !equal {
			diffs = append(diffs, name)
		}
	}
	check("message id", w.MessageID == g.MessageID)
	check("aggregate id", w.AggregateID == g.AggregateID)
	check("aggregate type", w.AggregateType == g.AggregateType)
	check("sequence", w.Sequence == g.Sequence)
	check("timestamp", w.Timestamp == g.Timestamp)
	check("payload", string(archive.AppendEventJSON(nil, &archive.Record{Payload: w.Payload})) == string(archive.AppendEventJSON(nil, &archive.Record{Payload: g.Payload})))
	check("metadata", string(archive.AppendEventJSON(nil, &archive.Record{Metadata: w.Metadata})) == string(archive.AppendEventJSON(nil, &archive.Record{Metadata: g.Metadata})))
	check("snapshot flag", w.Snapshot == g.Snapshot)
	switch len(diffs) {
	case 0:
		return "the bytes differ"
	case 1:
		return diffs[0] + " differs"
	}
	return strings.Join(diffs[:len(diffs)-1], ", ") + " and " + diffs[len(diffs)-1] + " differ"
}
