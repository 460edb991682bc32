package archive

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/schema"
)

// txSizes is the grouping the transaction tests write: runs of equal sizes (kept as one line each), a
// change of size at every turn, and transactions that span the chunk boundaries of ChunkRecords 4.
var txSizes = []int{1, 1, 1, 2, 2, 3, 1, 5, 5, 1, 2}

// writeTxArchive writes events 0..39 with the gap 16-18, grouped by txSizes over and over (the
// transaction open at the gap ends there), and the edge snapshots.
func writeTxArchive(t testing.TB, dir string) {
	t.Helper()
	evs := append(edgeEvents(0), plainEvents(19, 21)...)
	opts := testOptions(0, 39)
	opts.ChunkRecords = 4
	opts.Transactions = true
	w, err := Create(dir, opts)
	require.NoError(t, err)
	k, inTx := 0, 0
	for i := range evs {
		if evs[i].Token == 19 {
			require.NoError(t, w.addGap(manifest.Gap{From: 16, To: 18, Cause: "unavailable"}))
			if inTx > 0 {
				k, inTx = k+1, 0
			}
		}
		require.NoError(t, w.WriteEvent(&evs[i]))
		inTx++
		if inTx == txSizes[k%len(txSizes)] {
			require.NoError(t, w.EndTransaction())
			k, inTx = k+1, 0
		}
	}
	finishTx(t, w)
}

func finishTx(t testing.TB, w *Writer) {
	t.Helper()
	require.NoError(t, w.FinishEvents())
	for _, s := range edgeSnapshots() {
		require.NoError(t, w.WriteSnapshot(&s))
	}
	require.NoError(t, w.Close())
}

// txEnds lists the tokens that end a transaction, by the cursor.
func txEnds(t *testing.T, a *Archive) []int64 {
	t.Helper()
	c := a.TxCursor(context.Background())
	require.NotNil(t, c)
	defer c.Close()
	var ends []int64
	it := a.Events(context.Background(), 0)
	defer it.Close()
	for it.Next() {
		end, err := c.Ends(it.Token())
		require.NoError(t, err)
		if end {
			ends = append(ends, it.Token())
		}
	}
	require.NoError(t, it.Err())
	return ends
}

func TestTransactions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	writeTxArchive(t, dir)
	a := mustOpen(t, dir)
	m := a.Manifest()
	assert.Equal(t, VersionTransactions, m.Version)
	require.NotNil(t, m.Transactions)

	rep, err := a.Verify(context.Background(), VerifyOptions{})
	require.NoError(t, err, "%v", rep.Err())
	_, err = a.Verify(context.Background(), VerifyOptions{Quick: true})
	require.NoError(t, err)

	// The grouping as written: txSizes over the tokens, a transaction open at the gap ending at 15.
	var want []int64
	k, inTx := 0, 0
	for tok := int64(0); tok <= 39; tok++ {
		if tok >= 16 && tok <= 18 {
			continue
		}
		inTx++
		if inTx == txSizes[k%len(txSizes)] || tok == 15 || tok == 39 {
			want = append(want, tok)
			k, inTx = k+1, 0
		}
	}
	assert.Equal(t, want, txEnds(t, a))
	// Every record is valid against schema/transaction.v2.json too.
	tit := a.newIterator(context.Background(), manifest.StreamTransactions, 0, m.Transactions.SHA256)
	for tit.Next() {
		require.NoError(t, schema.Validate(schema.Transaction(), tit.Line()))
	}
	require.NoError(t, tit.Err())
	tit.Close()
	assert.Equal(t, int64(len(want)), m.Transactions.Count)

	// The fingerprint covers the records only: the same records without transactions give the same.
	plain := filepath.Join(t.TempDir(), "b")
	goldenArchive(t, plain)
	assert.Equal(t, mustOpen(t, plain).Manifest().Fingerprint, m.Fingerprint)
	assert.Equal(t, Version, mustOpen(t, plain).Manifest().Version, "an archive without transactions stays version 1")
	assert.Nil(t, mustOpen(t, plain).TxCursor(context.Background()))
}

func TestTransactionsResume(t *testing.T) {
	whole := filepath.Join(t.TempDir(), "whole")
	writeTxArchive(t, whole)
	for _, stop := range []int{3, 9, 14, 22, 30} {
		dir := filepath.Join(t.TempDir(), "a")
		writeTxArchiveResumed(t, dir, stop)
		a := mustOpen(t, dir)
		_, err := a.Verify(context.Background(), VerifyOptions{})
		require.NoError(t, err, "stop %d", stop)
		assert.Equal(t, txEnds(t, mustOpen(t, whole)), txEnds(t, a), "stop %d", stop)
		assert.Equal(t, *mustOpen(t, whole).Manifest().Transactions, *a.Manifest().Transactions, "stop %d", stop)
	}
}

// writeTxArchiveResumed is writeTxArchive with the writer suspended after stop events (losing the open
// chunk) and resumed from its journal, writing again from its NextToken on as an export does.
func writeTxArchiveResumed(t *testing.T, dir string, stop int) {
	t.Helper()
	evs := append(edgeEvents(0), plainEvents(19, 21)...)
	opts := testOptions(0, 39)
	opts.ChunkRecords = 4
	opts.Transactions = true
	// ends[i]: event i ends a transaction; gapBefore: the gap is declared before token 19.
	ends := make([]bool, len(evs))
	k, inTx := 0, 0
	for i := range evs {
		inTx++
		if inTx == txSizes[k%len(txSizes)] {
			ends[i] = true
			k, inTx = k+1, 0
		}
		if evs[i].Token == 15 { // the gap ends the transaction open before it
			if inTx != 0 {
				ends[i] = true
				k, inTx = k+1, 0
			}
		}
	}
	write := func(w *Writer, from int64, upto int) {
		for i := range evs[:upto] {
			if evs[i].Token < from {
				continue
			}
			if evs[i].Token == 19 {
				require.NoError(t, w.addGap(manifest.Gap{From: 16, To: 18, Cause: "unavailable"}))
			}
			require.NoError(t, w.WriteEvent(&evs[i]))
			if ends[i] {
				require.NoError(t, w.EndTransaction())
			}
		}
	}
	w, err := Create(dir, opts)
	require.NoError(t, err)
	write(w, 0, stop)
	require.NoError(t, w.Suspend())
	w, err = Resume(dir, opts)
	require.NoError(t, err)
	write(w, w.NextToken(), len(evs))
	finishTx(t, w)
}

func TestTransactionsDamage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	writeTxArchive(t, dir)
	m := mustOpen(t, dir).Manifest()
	var txChunk string
	for _, c := range m.Chunks {
		if c.Stream == manifest.StreamTransactions {
			txChunk = filepath.Join(dir, "data", filepath.FromSlash(c.Path))
			break
		}
	}
	require.NotEmpty(t, txChunk)

	t.Run("flipped bit", func(t *testing.T) {
		d := filepath.Join(t.TempDir(), "a")
		copyDir(t, dir, d)
		flipBit(t, filepath.Join(d, "data", filepath.FromSlash(m.Chunks[len(m.Chunks)-1].Path)), 20)
		for _, quick := range []bool{true, false} {
			_, err := mustOpen(t, d).Verify(context.Background(), VerifyOptions{Quick: quick})
			require.ErrorIs(t, err, ErrVerify)
		}
	})
	t.Run("runs that do not group the events", func(t *testing.T) {
		d := filepath.Join(t.TempDir(), "a")
		copyDir(t, dir, d)
		lengthenLastRun(t, d)
		rep, err := mustOpen(t, d).Verify(context.Background(), VerifyOptions{})
		require.ErrorIs(t, err, ErrVerify)
		require.ErrorIs(t, rep.Err(), ErrSequence)
		assert.Contains(t, rep.Err().Error(), "run past the last token")
	})
	t.Run("transactions in a version 1 manifest", func(t *testing.T) {
		d := filepath.Join(t.TempDir(), "a")
		copyDir(t, dir, d)
		reseal(t, d, func(m *manifest.Manifest) { m.Version = 1 })
		_, err := Open(d)
		require.ErrorIs(t, err, ErrManifest)
	})
}

// lengthenLastRun rewrites the last transactions chunk of the archive in dir with its last run one event
// too long, digests and BagIt files resealed: only the grouping is wrong.
func lengthenLastRun(t testing.TB, d string) {
	m := mustOpen(t, d).Manifest()
	idx := len(m.Chunks) - 1
	raw := chunkRaw(t, d, idx)
	lines := splitLines(raw)
	r, err := parseTxLine(lines[len(lines)-1])
	require.NoError(t, err)
	r.Events++
	lines[len(lines)-1] = appendTxLine(nil, r)
	var nraw []byte
	for _, l := range lines {
		nraw = append(nraw, l...)
	}
	rewriteChunk(t, d, idx, nraw, zstdCompress)
	reseal(t, d, func(m *manifest.Manifest) {
		c := &m.Chunks[idx]
		c.RawSize, c.RawSHA256 = int64(len(nraw)), sha256hex(nraw)
		zb, err := os.ReadFile(filepath.Join(d, "data", filepath.FromSlash(c.Path)))
		require.NoError(t, err)
		c.Size, c.SHA256 = int64(len(zb)), sha256hex(zb)
		var all []byte
		for i, c := range m.Chunks {
			if c.Stream == manifest.StreamTransactions {
				all = append(all, chunkRaw(t, d, i)...)
			}
		}
		m.Transactions.SHA256 = sha256hex(all)
	})
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for b[i] != '\n' {
			i++
		}
		out = append(out, append([]byte(nil), b[:i+1]...))
		b = b[i+1:]
	}
	return out
}

func TestParseTxLine(t *testing.T) {
	r, err := parseTxLine([]byte(`{"token":0,"events":2,"repeat":231}` + "\n"))
	require.NoError(t, err)
	assert.Equal(t, txRun{Token: 0, Events: 2, Repeat: 231}, r)
	assert.Equal(t, `{"token":7,"events":1,"repeat":3}`+"\n", string(appendTxLine(nil, txRun{7, 1, 3})))
	for _, bad := range []string{
		`{"token":0,"events":0,"repeat":1}`, `{"token":0,"events":1,"repeat":0}`, `{"token":-1,"events":1,"repeat":1}`,
		`{"token":01,"events":1,"repeat":1}`, `{"token":0, "events":1,"repeat":1}`, `{"token":0,"events":1,"repeat":1}`,
		`{"token":0,"events":1,"repeat":1,"x":1}`, `{"token":99999999999999999999,"events":1,"repeat":1}`,
	} {
		line := bad + "\n"
		if bad == `{"token":0,"events":1,"repeat":1}` {
			line = bad // no LF
		}
		_, err := parseTxLine([]byte(line))
		assert.ErrorIs(t, err, ErrRecord, bad)
	}
}

// FuzzTxLine: a transactions record is accepted only in its canonical form, which it re-encodes to.
func FuzzTxLine(f *testing.F) {
	f.Add([]byte(`{"token":0,"events":2,"repeat":231}` + "\n"))
	f.Add([]byte(`{"token":9223372036854775807,"events":1,"repeat":1}` + "\n"))
	f.Add([]byte(`{"token":0,"events":1,"repeat":1}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := parseTxLine(line)
		if err != nil {
			return
		}
		if got := appendTxLine(nil, r); string(got) != string(line) {
			t.Fatalf("accepted %q, which re-encodes to %q", line, got)
		}
		if r.Token < 0 || r.Events < 1 || r.Repeat < 1 {
			t.Fatalf("accepted %+v", r)
		}
	})
}
