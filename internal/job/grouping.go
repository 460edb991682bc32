package job

import (
	"context"

	"github.com/axarchive/axarchive/archive"
)

// txEnds follows the archives' recorded transactions (archive format version 2) across a chain: ends
// reports whether the event at token is the last of its source transaction. Tokens must be asked in
// increasing order. An archive of the chain without transactions ends one at every event; the last
// event of each archive ends one.
type txEnds struct {
	parts []txPart
	k     int
}

type txPart struct {
	last   int64
	cursor *archive.TxCursor // nil: the archive records no transactions
}

// newTxEnds returns the grouping of the archives, or nil when none of them records one.
func newTxEnds(ctx context.Context, archives []*archive.Archive) *txEnds {
	t := &txEnds{}
	grouped := false
	for _, a := range archives {
		c := a.TxCursor(ctx)
		grouped = grouped || c != nil
		t.parts = append(t.parts, txPart{last: a.Manifest().Events.Range.Last, cursor: c})
	}
	if !grouped {
		return nil
	}
	return t
}

func (t *txEnds) ends(token int64) (bool, error) {
	for t.k < len(t.parts)-1 && token > t.parts[t.k].last {
		t.k++
	}
	p := t.parts[t.k]
	if p.cursor == nil || token == p.last {
		return true, nil
	}
	return p.cursor.Ends(token)
}

func (t *txEnds) close() {
	if t == nil {
		return
	}
	for _, p := range t.parts {
		if p.cursor != nil {
			p.cursor.Close()
		}
	}
}
