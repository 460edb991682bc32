package archive

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/axarchive/axarchive/archive/manifest"
)

// Resuming an interrupted export: the journal checked against the options, and the directory brought
// back to what the journal says was committed.

// Resume reopens the incomplete archive in dir to continue an interrupted export. The options must
// describe the same export: a different Source, Filter, Snapshots or Previous is refused with
// ErrMismatch naming the field; Range, chunking, level, tool and created time are taken from the
// journal (see Writer.Options). Resume re-hashes every committed chunk (a damaged one is ErrCorrupt),
// deletes temporary files and any chunk written after the last journal update, and returns ErrComplete
// for a finished archive. The Writer continues at Writer.NextToken (events) or after
// Writer.SnapshotsCommitted (snapshots), and the archive it completes is byte for byte the one an
// uninterrupted run would have written.
func Resume(dir string, opts Options) (*Writer, error) {
	return ResumeIn(Dir(dir), opts)
}

// ResumeIn reopens the incomplete archive in st, as Resume does in a directory. An object store's
// unfinished uploads of the interrupted run are the caller's to abort before (s3store.AbortUploads);
// the files they would have become are written again.
func ResumeIn(st Storage, opts Options) (*Writer, error) {
	dir := st.String()
	if err := normalize(&opts); err != nil {
		return nil, fmt.Errorf("resume archive %s: %w", dir, err)
	}
	st = withSync(st, !opts.NoSync)
	j, err := readJournal(st)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, merr := st.Stat(manifestPath); merr == nil {
				return nil, fmt.Errorf("resume archive %s: %w", dir, ErrComplete)
			}
			if entries, lerr := st.List(""); lerr == nil && unborn(entries) {
				return nil, fmt.Errorf("resume archive %s: %w", dir, ErrNotStarted)
			}
			return nil, fmt.Errorf("resume archive %s: %w: no %s", dir, ErrNotArchive, journalPath)
		}
		return nil, fmt.Errorf("resume archive %s: %w", dir, err)
	}
	if err := checkJournal(j); err != nil {
		return nil, fmt.Errorf("resume archive %s: %w", dir, err)
	}
	if err := sameExport(j, &opts); err != nil {
		return nil, fmt.Errorf("resume archive %s: %w", dir, err)
	}
	w := &Writer{st: st, dir: dir, j: *j, sync: !opts.NoSync}
	w.opts = Options{
		Source: j.Source, Range: j.Range, Filter: j.Filter, Snapshots: j.SnapshotMode, Previous: j.Previous,
		ChunkBytes: j.Chunking.MaxBytes, ChunkRecords: j.Chunking.MaxRecords, Level: j.Level,
		Tool: j.Tool, Created: j.Created, NoSync: opts.NoSync, Transactions: j.Transactions != nil, Sign: opts.Sign,
		Recipients: opts.Recipients, Identities: opts.Identities,
	}
	if err := w.cleanup(); err != nil {
		return nil, fmt.Errorf("resume archive %s: %w", dir, err)
	}
	if err := w.start(); err != nil {
		return nil, fmt.Errorf("resume archive %s: %w", dir, err)
	}
	return w, nil
}

func encryptionWord(encrypted bool) string {
	if encrypted {
		return "recipients"
	}
	return "no recipients"
}

func signingWord(signed bool) string {
	if signed {
		return "a signing key"
	}
	return "no signing key"
}

// sameExport compares the options that make an archive different.
func sameExport(j *journal, opts *Options) error {
	mismatch := func(field string, was, is any) error {
		return fmt.Errorf("%w: %s: the interrupted export has %v, this one %v", ErrMismatch, field, was, is)
	}
	if j.Source != opts.Source {
		return mismatch("source", describeSource(j.Source), describeSource(opts.Source))
	}
	if !sameFilter(j.Filter, opts.Filter) {
		return mismatch("filter", describeFilter(j.Filter), describeFilter(opts.Filter))
	}
	if j.SnapshotMode != opts.Snapshots {
		return mismatch("snapshots", j.SnapshotMode, opts.Snapshots)
	}
	if (j.Previous == nil) != (opts.Previous == nil) || (j.Previous != nil && *j.Previous != *opts.Previous) {
		return mismatch("previous archive", describeLink(j.Previous), describeLink(opts.Previous))
	}
	if (j.Transactions != nil) != opts.Transactions {
		return mismatch("transactions recorded", j.Transactions != nil, opts.Transactions)
	}
	if j.Encrypted != (len(opts.Recipients) > 0) {
		return mismatch("encryption", encryptionWord(j.Encrypted), encryptionWord(len(opts.Recipients) > 0))
	}
	if j.Signed != (opts.Sign != nil) {
		return mismatch("signing", signingWord(j.Signed), signingWord(opts.Sign != nil))
	}
	return nil
}

func sameFilter(a, b *manifest.Filter) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	eq := func(x, y []string) bool {
		x, y = slices.Clone(x), slices.Clone(y)
		slices.Sort(x)
		slices.Sort(y)
		return slices.Equal(slices.Compact(x), slices.Compact(y))
	}
	return eq(a.IncludeTypes, b.IncludeTypes) && eq(a.ExcludeTypes, b.ExcludeTypes) && eq(a.AggregateTypes, b.AggregateTypes)
}

func describeFilter(f *manifest.Filter) string {
	if f == nil {
		return "none"
	}
	return fmt.Sprintf("include %v, exclude %v, aggregate types %v", f.IncludeTypes, f.ExcludeTypes, f.AggregateTypes)
}

func describeLink(l *manifest.Link) string {
	if l == nil {
		return "none"
	}
	return fmt.Sprintf("%s (last token %d)", l.Fingerprint, l.LastToken)
}

// checkJournal makes sure a journal read from disk is one this package could have written, so that its
// paths are safe to use and its state consistent.
func checkJournal(j *journal) error {
	bad := func(format string, args ...any) error {
		return errorf(journalPath, 0, -1, ErrCorrupt, format, args...)
	}
	r := j.Range
	if r.First < 0 || r.Last < r.First-1 || r.Last == math.MaxInt64 {
		return bad("invalid range %d-%d", r.First, r.Last)
	}
	if j.Chunking.MaxBytes <= 0 || j.Chunking.MaxRecords <= 0 || j.Level < 1 || j.Level > 22 {
		return bad("invalid chunking or level")
	}
	if j.NextToken < r.First || j.NextToken > r.Last+1 || (j.EventsDone && j.NextToken != r.Last+1) {
		return bad("next token %d outside the range %d-%d", j.NextToken, r.First, r.Last)
	}
	switch j.SnapshotMode {
	case manifest.SnapshotsAll, manifest.SnapshotsLatest, manifest.SnapshotsNone:
	default:
		return bad("snapshot mode %q", j.SnapshotMode)
	}
	if j.LastPosition < -1 {
		return bad("last position %d", j.LastPosition)
	}
	var counts [3]int64
	last := [3]int64{r.First - 1, -1, r.First - 1}
	for _, c := range j.Chunks {
		stream, first, ok := parseChunkName(c.Path)
		if !ok || stream != c.Stream || first != c.First || c.Last < c.First || c.Records < 1 {
			return bad("invalid chunk %q", c.Path)
		}
		s := streamIndex(stream)
		if s == 2 && j.Transactions == nil {
			return bad("transactions chunk %q in a journal without transactions", c.Path)
		}
		if c.First <= last[s] {
			return bad("chunk %q out of order", c.Path)
		}
		last[s] = c.Last
		counts[s] += c.Records
	}
	if last[0] >= j.NextToken || last[1] != j.LastPosition || counts[0] != j.Events.Count || counts[1] != j.Snapshots.Count {
		return bad("chunks do not match the committed state")
	}
	if t := j.Transactions; t != nil {
		if counts[2] != t.Lines || last[2] >= j.NextToken || t.Open >= j.NextToken || t.Open < -1 ||
			t.Run.Repeat < 0 || t.Run.Events < 0 || (t.Run.Repeat > 0 && (t.Run.Token <= last[2] || t.Run.Events < 1)) {
			return bad("transactions do not match the committed state")
		}
	}
	return nil
}

// cleanup removes what an interrupted run left that the journal does not cover: temporary files,
// chunks renamed after the last journal update, and the manifest and BagIt files of an interrupted
// Close. Every committed chunk is re-hashed. Files that axarchive does not write are left alone and
// refused.
func (w *Writer) cleanup() error {
	committed := map[string]*manifest.ChunkInfo{}
	for i := range w.j.Chunks {
		committed[w.j.Chunks[i].Path] = &w.j.Chunks[i]
	}
	remove := w.st.Remove
	for _, rel := range []string{journalPath + tmpSuffix, manifestPath, manifestPath + tmpSuffix,
		bagitPath, bagInfoPath, bagManifestPath, tagManifestPath,
		bagitPath + tmpSuffix, bagInfoPath + tmpSuffix, bagManifestPath + tmpSuffix, tagManifestPath + tmpSuffix} {
		if err := remove(rel); err != nil {
			return err
		}
	}
	d := localDir(w.st)
	if d != nil {
		if fi, err := os.Lstat(d.path(dataDir)); err != nil || !fi.IsDir() || fi.Mode()&os.ModeSymlink != 0 {
			return errorf(dataDir, 0, -1, ErrCorrupt, "not a directory")
		}
	}
	streams := []string{manifest.StreamEvents, manifest.StreamSnapshots}
	if w.j.Transactions != nil {
		streams = append(streams, manifest.StreamTransactions)
	}
	for _, stream := range streams {
		rel := dataDir + "/" + stream
		if d != nil {
			fi, err := os.Lstat(d.path(rel))
			if errors.Is(err, fs.ErrNotExist) {
				// Version control does not keep empty directories; recreate them.
				if err := os.Mkdir(d.path(rel), 0o755); err != nil {
					return err
				}
			} else if err != nil || !fi.IsDir() || fi.Mode()&os.ModeSymlink != 0 {
				if err == nil {
					err = fmt.Errorf("not a directory")
				}
				return errorf(rel, 0, -1, ErrCorrupt, "%v", err)
			}
		}
		entries, err := w.st.List(rel + "/")
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := strings.TrimPrefix(e.Name, dataDir+"/")
			if _, _, ok := parseChunkName(strings.TrimSuffix(name, tmpSuffix)); !ok || !e.Mode.IsRegular() {
				return errorf(e.Name, 0, -1, ErrCorrupt, "unexpected file in an incomplete archive; move it away and resume again")
			}
			if strings.HasSuffix(name, tmpSuffix) || committed[name] == nil {
				if err := remove(e.Name); err != nil {
					return err
				}
			}
		}
	}
	for _, c := range w.j.Chunks {
		if err := checkChunkFile(w.st, &c); err != nil {
			return err
		}
	}
	return nil
}

// checkChunkFile compares a chunk file's size and SHA-256 with its description.
func checkChunkFile(st Storage, c *manifest.ChunkInfo) error {
	var r chunkReader
	r.info, r.path = c, archivePath(c.Path)
	f, size, err := openSized(st, r.path)
	if err != nil {
		return r.fileError(err)
	}
	defer f.Close()
	if size != c.Size {
		return errorf(r.path, 0, -1, ErrCorrupt, "size is %d bytes, the journal says %d", size, c.Size)
	}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := f.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err != nil || n > c.Size {
			break
		}
	}
	if sum := hexSum(h); n != c.Size || sum != c.SHA256 {
		return errorf(r.path, 0, -1, ErrCorrupt, "sha256 is %s, the journal says %s", sum, c.SHA256)
	}
	return nil
}
