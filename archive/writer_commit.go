package archive

import (
	"fmt"
	"os"
	"slices"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/internal/crashpoint"
)

// Completing an archive (the manifest, then the BagIt files, then the journal removed), or leaving it
// resumable.

// Close completes the archive: it finishes the events if FinishEvents was not called, commits the last
// chunk, writes data/manifest.json, then the BagIt files, and removes the journal. Only when Close
// returns nil is the archive complete. Close is idempotent; after an error the directory stays
// resumable.
func (w *Writer) Close() error {
	if w.closed {
		if w.completed || w.err != nil {
			return w.err
		}
		return errClosed
	}
	if w.err != nil {
		w.discard()
		return w.err
	}
	if err := w.FinishEvents(); err != nil {
		w.discard()
		return err
	}
	if err := w.commitChunk(); err != nil {
		w.discard()
		return err
	}
	if err := w.wait(); err != nil {
		w.discard()
		return err
	}
	err := w.commit()
	w.discard()
	if err != nil {
		return w.fail(err)
	}
	w.completed = true
	return nil
}

func (w *Writer) commit() error {
	m, err := w.manifest()
	if err != nil {
		return err
	}
	data, err := marshalManifest(m)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if len(data) > maxManifestBytes {
		return fmt.Errorf("write manifest: it would be %d bytes (%d chunks), more than the %d bytes readers accept: export again with larger chunks (--chunk-size, --chunk-records)", len(data), len(m.Chunks), maxManifestBytes)
	}
	// The manifest must be one that Open accepts; a failure here is a bug, and nothing is written.
	if _, err := parseManifest(data); err != nil {
		return fmt.Errorf("internal error: the manifest written would be invalid: %w", err)
	}
	if err := writeFile(w.st, manifestPath, data); err != nil {
		return err
	}
	for _, f := range bagFiles(m, data) {
		if err := writeFile(w.st, f.Path, f.Data); err != nil {
			return err
		}
	}
	if w.opts.Sign != nil {
		if err := signTagManifest(w.st, w.opts.Sign); err != nil {
			return err
		}
	}
	crashpoint.Hit("journal-remove") // faulttest: manifest and BagIt files written, journal still there
	if d := localDir(w.st); d != nil {
		// Not Storage.Remove: a journal already gone is an error here.
		if err := os.Remove(d.path(journalPath)); err != nil {
			return fmt.Errorf("remove journal: %w", err)
		}
		if w.sync {
			return syncDir(w.dir)
		}
		return nil
	}
	if err := w.st.Remove(journalPath); err != nil {
		return fmt.Errorf("remove journal: %w", err)
	}
	return nil
}

// manifest builds the manifest from the journal, which by now covers everything.
func (w *Writer) manifest() (*manifest.Manifest, error) {
	j := &w.j
	evHash, err := unmarshalHash(j.Events.Hash)
	if err != nil {
		return nil, err
	}
	snHash, err := unmarshalHash(j.Snapshots.Hash)
	if err != nil {
		return nil, err
	}
	m := &manifest.Manifest{
		Format: formatName, Version: Version, Tool: j.Tool, Created: j.Created, Source: j.Source,
		Events: manifest.EventStream{
			FirstToken: j.Range.First, LastToken: j.Range.Last, Range: j.Range, Count: j.Events.Count,
			SHA256: hexSum(evHash), Types: j.Events.Types, OtherTypes: j.Events.OtherTypes,
		},
		Snapshots: manifest.SnapshotStream{
			Mode: j.SnapshotMode, Count: j.Snapshots.Count, SHA256: hexSum(snHash),
			Types: j.Snapshots.Types, OtherTypes: j.Snapshots.OtherTypes,
		},
		Filter: j.Filter, Previous: j.Previous, Chunking: j.Chunking,
		Gaps: j.Gaps, Notes: j.Notes, Chunks: j.Chunks,
	}
	var gapTokens int64
	for _, g := range j.Gaps {
		gapTokens += g.To - g.From + 1
	}
	if m.Filter != nil {
		m.Events.Filtered = (j.Range.Last - j.Range.First + 1) - j.Events.Count - gapTokens
	}
	if m.Events.Types == nil {
		m.Events.Types = []manifest.TypeCount{}
	}
	if m.Snapshots.Types == nil {
		m.Snapshots.Types = []manifest.TypeCount{}
	}
	if m.Gaps == nil {
		m.Gaps = []manifest.Gap{}
	}
	if m.Notes == nil {
		m.Notes = []manifest.Note{}
	}
	if m.Chunks == nil {
		m.Chunks = []manifest.ChunkInfo{}
	}
	if j.Encrypted {
		m.Version, m.Encryption = versionEncryption, encryptionAge
	}
	if t := j.Transactions; t != nil {
		txHash, err := unmarshalHash(t.Hash)
		if err != nil {
			return nil, err
		}
		m.Version = VersionTransactions
		m.Transactions = &manifest.TransactionStream{Count: t.Count, Runs: t.Lines, SHA256: hexSum(txHash)}
		// Committed with the events chunks, listed after the snapshots.
		m.Chunks = slices.Clone(m.Chunks)
		slices.SortStableFunc(m.Chunks, func(a, b manifest.ChunkInfo) int { return streamIndex(a.Stream) - streamIndex(b.Stream) })
	}
	m.Fingerprint, err = combineDigests(m.Events.SHA256, m.Snapshots.SHA256)
	return m, err
}

// discard lets a chunk being committed in the background finish, drops the open chunk and releases the
// encoder; the writer is closed afterwards.
func (w *Writer) discard() {
	if w.closed {
		return
	}
	_ = w.wait() // its error, if any, is sticky already or no longer matters: what is committed stays
	if w.open {
		w.chunk.abort()
		w.open = false
	}
	w.enc.Close()
	if t := w.tx; t != nil {
		if t.open {
			t.chunk.abort()
			t.open = false
		}
		t.enc.Close()
	}
	w.closed = true
}

// Suspend stops writing and leaves the directory resumable: the open chunk is discarded, everything
// committed stays, and Resume continues from NextToken and SnapshotsCommitted. After Suspend the writer
// is closed.
func (w *Writer) Suspend() error {
	w.discard()
	return nil
}
