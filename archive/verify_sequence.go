package archive

import (
	"slices"

	"github.com/axarchive/axarchive/archive/manifest"
)

// What a full verification follows in order, on the goroutine that called Verify: the tokens of each
// stream (against the rules of sequence.go), the chunks' bounds and counts, the types, the stream
// digests and the fingerprint.

// collector follows the batches in order: tokens, continuity, chunk bounds and counts, types.
type collector struct {
	v *verifier
	m *manifest.Manifest

	stream string
	order  tokenOrder

	// the current chunk
	chunk     int
	first     int64
	last      int64
	lines     int64
	lineProbs int
	types     [2]*typeCounter
	counts    [2]int64
	partial   [2]bool // a chunk of the stream could not be read to its end
}

func newCollector(v *verifier) *collector {
	c := &collector{v: v, m: v.a.m, chunk: -1}
	c.types[0], c.types[1] = newTypeCounter(), newTypeCounter()
	c.startStream(manifest.StreamEvents)
	return c
}

func (c *collector) startStream(stream string) {
	c.stream = stream
	if stream == manifest.StreamEvents {
		c.order = newEventOrder(c.m.Events.Range, c.m.Gaps, c.m.Filter == nil)
	} else {
		c.order = newSnapshotOrder(c.m.Source.Kind == manifest.SourceServer)
	}
}

func (c *collector) lineProblem(e *Error) {
	c.lineProbs++
	if c.lineProbs <= maxChunkLineProblems {
		c.v.problem(e)
	}
}

func (c *collector) batch(b *vbatch) {
	info := &c.m.Chunks[b.chunk]
	path := archivePath(info.Path)
	if b.chunk != c.chunk {
		c.chunk = b.chunk
		c.first, c.last, c.lines, c.lineProbs = -1, -1, 0, 0
		if info.Stream != c.stream {
			c.endStream()
			c.startStream(info.Stream)
		}
	}
	s := 0
	if c.stream == manifest.StreamSnapshots {
		s = 1
	}
	p := 0
	for i, tok := range b.tokens {
		for p < len(b.problems) && b.problems[p].idx == i {
			c.lineProblem(b.problems[p].err)
			p++
		}
		lineNo := b.firstLine + int64(i)
		c.lines++
		c.counts[s]++
		c.types[s].addString(b.types[i])
		if i < len(b.sizes) && b.sizes[i] >= 0 && c.v.opts.Measured != nil {
			c.v.opts.Measured(tok, b.sizes[i])
		}
		if tok < 0 {
			continue
		}
		if c.lines == 1 {
			c.first = tok
		}
		c.last = tok
		c.follow(path, lineNo, tok, info)
	}
	if !b.end {
		return
	}
	c.v.report.Chunks++
	c.v.report.Bytes += b.fileBytes
	c.v.report.RawBytes += b.rawBytes
	if b.fileSum != "" {
		c.v.sums[path] = b.fileSum
	}
	if c.lineProbs > maxChunkLineProblems {
		c.v.problem(errorf(path, 0, -1, ErrCorrupt, "%d more problems in this chunk not shown", c.lineProbs-maxChunkLineProblems))
	}
	if b.partial {
		// What the chunk should have held is unknown: do not report its tokens as missing, nor the
		// stream's totals, which cannot match.
		c.partial[s] = true
		c.order.skipTo(info.Last)
	}
	if b.chunkErrs != nil {
		c.v.problems(b.chunkErrs)
		return
	}
	if c.lines > 0 && (c.first != info.First || c.last != info.Last) {
		c.v.problem(errorf(path, 0, -1, ErrCorrupt, "holds tokens %d to %d, the manifest says %d to %d", c.first, c.last, info.First, info.Last))
	}
}

// follow checks one token against the order and continuity rules of its stream.
func (c *collector) follow(path string, lineNo, tok int64, info *manifest.ChunkInfo) {
	fail := func(sentinel error, format string, args ...any) {
		c.lineProblem(errorf(path, lineNo, tok, sentinel, format, args...))
	}
	if outsideChunk(tok, info) {
		fail(ErrCorrupt, "outside the chunk's range %d to %d", info.First, info.Last)
	}
	o := &c.order
	if o.clean(tok) {
		o.take(tok)
		return
	}
	prev, check := o.prev, o.check(tok)
	if c.stream == manifest.StreamSnapshots {
		if check.notOrdinal {
			fail(ErrSequence, "position %d of a server export must be its ordinal %d", tok, check.expected)
		}
		if check.notAfter {
			fail(ErrSequence, "not after position %d (duplicate or out of order)", prev)
		}
		o.take(tok)
		return
	}
	switch {
	case check.notAfter:
		fail(ErrSequence, "not after token %d (duplicate or out of order)", prev)
		return
	case check.outOfRange:
		fail(ErrSequence, "outside the archive's range %d to %d", c.m.Events.FirstToken, c.m.Events.LastToken)
	}
	if g := check.gap; check.inGap {
		fail(ErrSequence, "inside the declared gap %d to %d (%s)", g.From, g.To, g.Cause)
	} else if check.missing {
		fail(ErrSequence, "tokens %d to %d are missing and no gap is declared", check.expected, tok-1)
	}
	o.take(tok)
}

func (c *collector) endStream() {
	if c.stream != manifest.StreamEvents {
		return
	}
	if from, to, missing := c.order.missingAtEnd(); missing {
		c.v.problem(errorf(manifestPath, 0, -1, ErrSequence, "tokens %d to %d are missing at the end of the range and no gap is declared", from, to))
	}
	c.stream = "" // checked once
}

func (c *collector) finish(evDigest, snDigest string) {
	if c.stream == manifest.StreamEvents {
		c.endStream()
	}
	r := c.v.report
	r.Events, r.Snapshots = c.counts[0], c.counts[1]
	m := c.m
	if c.partial[0] || c.partial[1] {
		// The chunk problems already say why; totals over missing data would only repeat them.
		return
	}
	c.compareTypes("events", c.types[0], m.Events.Types, m.Events.OtherTypes)
	c.compareTypes("snapshots", c.types[1], m.Snapshots.Types, m.Snapshots.OtherTypes)
	if evDigest != m.Events.SHA256 {
		c.v.problem(errorf(manifestPath, 0, -1, ErrCorrupt, "events digest is %s, the manifest says %s", evDigest, m.Events.SHA256))
	}
	if snDigest != m.Snapshots.SHA256 {
		c.v.problem(errorf(manifestPath, 0, -1, ErrCorrupt, "snapshots digest is %s, the manifest says %s", snDigest, m.Snapshots.SHA256))
	}
	fp, _ := combineDigests(evDigest, snDigest)
	r.Fingerprint = fp
	if fp != m.Fingerprint {
		c.v.problem(errorf(manifestPath, 0, -1, ErrCorrupt, "fingerprint of the records is %s, the manifest says %s", fp, m.Fingerprint))
	}
}

func (c *collector) compareTypes(stream string, got *typeCounter, want []manifest.TypeCount, wantOther int64) {
	have := got.list()
	if slices.Equal(have, want) && got.other == wantOther {
		return
	}
	wantMap := map[string]int64{}
	for _, t := range want {
		wantMap[t.Type] = t.Count
	}
	shown := 0
	for _, t := range have {
		if wantMap[t.Type] != t.Count && shown < 10 {
			c.v.problem(errorf(manifestPath, 0, -1, ErrCorrupt, "%s: %d records of type %q, the manifest says %d", stream, t.Count, t.Type, wantMap[t.Type]))
			shown++
		}
		delete(wantMap, t.Type)
	}
	for _, t := range want {
		if _, ok := wantMap[t.Type]; ok && shown < 10 {
			c.v.problem(errorf(manifestPath, 0, -1, ErrCorrupt, "%s: no records of type %q, the manifest says %d", stream, t.Type, t.Count))
			shown++
		}
	}
	if got.other != wantOther {
		c.v.problem(errorf(manifestPath, 0, -1, ErrCorrupt, "%s: %d records of other types, the manifest says %d", stream, got.other, wantOther))
	}
}
