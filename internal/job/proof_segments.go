package job

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/reader"
	"github.com/axarchive/axarchive/internal/writer"
)

// CompareSegments reads the segment files in dir back, as export --segments reads a copy of a store, and
// compares them with the archives (one, or a chain): every event at its token, byte for byte, and every
// snapshot in the archives' order. The files number their snapshots 0, 1, 2, …, so an archive whose
// positions skip (--snapshots latest) is compared by order, not by position. opts.Progress counts the
// events compared in Checked.
func CompareSegments(ctx context.Context, dir string, archives []*archive.Archive, opts CompareOptions) (*Diff, error) {
	if opts.MaxDifferences <= 0 {
		opts.MaxDifferences = 20
	}
	im := newImporter(nil, archives, ImportOptions{})
	first := archives[0].Manifest().Events.Range.First
	last := archives[len(archives)-1].Manifest().Events.Range.Last
	d := &Diff{ArchiveFingerprint: archives[len(archives)-1].Manifest().Fingerprint, TargetHead: -1}
	fp := new(archive.Fingerprint)

	// The files, as a server would find them: a store with nothing in it has no file at all.
	var src *reader.SegmentSource
	segs, err := reader.OpenSegments(reader.SegmentsOptions{Dir: dir})
	switch {
	case errors.Is(err, reader.ErrNoSegments):
	case err != nil:
		return nil, err
	default:
		src = reader.NewSegmentSource(segs, reader.SegmentSourceOptions{
			Warn: func(msg string) { d.add(opts.MaxDifferences, "%s", msg) }, // a cut file is a difference here
		})
		if _, d.TargetHead, err = src.Bounds(ctx); err != nil {
			return nil, err
		}
	}

	if last >= first {
		head := d.TargetHead
		if head < last {
			d.add(opts.MaxDifferences, "the files end at token %d, the archive at token %d: %d events missing", head, last, last-head)
		}
		if to := min(head, last); to >= first {
			var counted *atomic.Int64
			if opts.Progress != nil {
				counted = &opts.Progress.Checked
			}
			p, pctx := startEventProof(ctx, im, first, d, fp, &opts, counted, false)
			err, readErr := compareStream(pctx, func(f *feed) error {
				return src.Events(f.ctx, first, to, func(e reader.Event) error {
					_, err := f.add(e.Token, e.Raw, false)
					return err
				})
			}, p.compare)
			if err == nil && readErr != nil {
				err = fmt.Errorf("read the segment files back: %w", readErr)
			}
			if err := p.finish(err); err != nil {
				return nil, err
			}
		}
	}
	if d.TargetHead > last {
		d.add(opts.MaxDifferences, "the files hold %d events after the archive's last token %d", d.TargetHead-last, last)
	}

	sp := &snapshotProof{d: d, maxDiffs: opts.MaxDifferences, fp: fp, archives: archives, ctx: ctx}
	defer sp.close()
	if src != nil {
		if err := src.Snapshots(ctx, reader.SnapshotRequest{}, sp); err != nil {
			return nil, fmt.Errorf("read the segment files' snapshots back: %w", err)
		}
	}
	for {
		want, err := sp.want()
		if err != nil {
			return nil, err
		}
		if want == nil {
			break
		}
		d.Snapshots++
		d.add(opts.MaxDifferences, "snapshot position %d (aggregate %q, sequence %d): not in the files", want.Token, want.AggregateID, want.Sequence)
	}
	d.TargetFingerprint = fp.Sum()
	return d, nil
}

// snapshotProof takes the snapshots read back from segment files (a reader.SnapshotWriter) and compares
// each with the archives' next.
type snapshotProof struct {
	ctx      context.Context
	d        *Diff
	maxDiffs int
	fp       *archive.Fingerprint
	archives []*archive.Archive
	it       *archive.Iterator // of archives[0]: those before are read
	line     []byte
}

// want returns the archives' next snapshot, nil after the last.
func (p *snapshotProof) want() (*archive.Record, error) {
	for len(p.archives) > 0 {
		if p.it == nil {
			p.it = p.archives[0].Snapshots(p.ctx)
		}
		if p.it.Next() {
			r, err := p.it.Record()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.archives[0].Dir(), err)
			}
			return r, nil
		}
		if err := p.it.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", p.archives[0].Dir(), err)
		}
		p.close()
		p.archives = p.archives[1:]
	}
	return nil, nil
}

func (p *snapshotProof) close() {
	if p.it != nil {
		p.it.Close()
		p.it = nil
	}
}

func (p *snapshotProof) WriteSnapshot(got *archive.Record) error {
	want, err := p.want()
	if err != nil {
		return err
	}
	if want == nil {
		p.d.add(p.maxDiffs, "snapshot position %d (aggregate %q, sequence %d): in the files, not in the archive", got.Token, got.AggregateID, got.Sequence)
		return nil
	}
	p.d.Snapshots++
	g := *got
	g.Token = want.Token // the files' positions count from 0; the archive's may skip
	p.line = archive.AppendSnapshotJSON(p.line[:0], &g)
	p.fp.WriteSnapshotLine(p.line)
	if gb, wb := codec.Encode(nil, &g), codec.Encode(nil, want); string(gb) != string(wb) {
		p.d.add(p.maxDiffs, "snapshot position %d (aggregate %q): %s", want.Token, want.AggregateID, describeDifference(wb, gb))
	}
	return nil
}

// AddNote hears of a cut snapshot file, which the Warn of the source has already counted.
func (p *snapshotProof) AddNote(manifest.Note) error { return nil }

// readBack reads every segment file in dir back, as Axon Server will read them, and compares what they
// hold with what the store wrote: every block intact (its CRC-32 and its events, which the reader
// checks), the same blocks in the same order (the SHA-256 over their checksums) and as many events and
// snapshots, the newest files ending where a server appends. It returns what differs, "" for nothing;
// an error only when ctx ends. Files that cannot be read are what differs: they are the import's own.
func readBack(ctx context.Context, dir string, events, snapshots writer.BlockDigest) (string, error) {
	segs, err := reader.OpenSegments(reader.SegmentsOptions{Dir: dir})
	if errors.Is(err, reader.ErrNoSegments) && events.Entries == 0 && snapshots.Entries == 0 {
		return "", nil
	}
	if err != nil {
		return fmt.Sprintf("the files cannot be read back: %v", err), nil
	}
	type blockIter interface {
		Next() bool
		Block() (int64, int, int)
		BlockChecksum() uint32
		Err() error
		TailCut() *reader.TailCut
		Close() error
	}
	compare := func(kind string, it blockIter, next func() int64, want writer.BlockDigest) (string, error) {
		defer it.Close()
		h := sha256.New()
		var blocks int64
		var crc [4]byte
		for it.Next() {
			if _, index, _ := it.Block(); index == 0 {
				binary.BigEndian.PutUint32(crc[:], it.BlockChecksum())
				h.Write(crc[:])
				blocks++
			}
		}
		switch err := it.Err(); {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return "", err
		case err != nil:
			return fmt.Sprintf("the %s files read back are damaged: %v", kind, err), nil
		case it.TailCut() != nil:
			return fmt.Sprintf("the %s files read back end in a damaged block: %s", kind, it.TailCut()), nil
		case next() != want.Entries:
			return fmt.Sprintf("the %s files hold %d entries, %d were written", kind, next(), want.Entries), nil
		case want.Known && blocks != want.Blocks:
			return fmt.Sprintf("the %s files hold %d blocks, %d were written", kind, blocks, want.Blocks), nil
		case want.Known && !bytes.Equal(h.Sum(nil), want.Sum):
			return fmt.Sprintf("the %s files hold other blocks than were written (their checksums differ)", kind), nil
		}
		return "", nil
	}
	ev := segs.Events(ctx, 0)
	if why, err := compare("events", ev, ev.NextToken, events); why != "" || err != nil {
		return why, err
	}
	sn := segs.Snapshots(ctx)
	return compare("snapshots", sn, sn.NextPosition, snapshots)
}
