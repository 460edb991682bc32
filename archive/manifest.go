package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	sjson "github.com/segmentio/encoding/json"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
	"github.com/axarchive/axarchive/schema"
)

// Manifest is the content of data/manifest.json: what a complete archive holds and how to check it
// (SPEC.md, "Manifest"). The JSON member order is the field order; Open fills it from the file after
// checking it, so every path in Chunks is a valid chunk name under data/.
type Manifest struct {
	Format  string    `json:"format"`  // "axarchive"
	Version int       `json:"version"` // Version
	Tool    string    `json:"tool"`    // the program that wrote the archive, e.g. "axarchive v0.1.0"
	Created time.Time `json:"created"` // UTC, whole seconds (SOURCE_DATE_EPOCH when set)
	Source  Source    `json:"source"`

	// Fingerprint is the lower-case hex SHA-256 of the events digest followed by the snapshots digest
	// (32 raw bytes each): one value that identifies the archive's content (see Fingerprint).
	Fingerprint string         `json:"fingerprint"`
	Events      EventStream    `json:"events"`
	Snapshots   SnapshotStream `json:"snapshots"`
	// Transactions, present from format version 2 on, says that the archive records how the source
	// grouped its events into transactions (SPEC.md, "Transactions"); nil when it does not.
	Transactions *TransactionStream `json:"transactions,omitempty"`
	// Encryption, from format version 2 on, is "age" when every chunk file is encrypted with
	// age (SPEC.md, "Encrypted chunks"), empty when none is.
	Encryption string   `json:"encryption,omitempty"`
	Filter     *Filter  `json:"filter,omitempty"`
	Previous   *Link    `json:"previous,omitempty"`
	Chunking   Chunking `json:"chunking"`
	Gaps       []Gap    `json:"gaps"`
	Notes      []Note   `json:"notes"`
	// Chunks lists the events chunks in token order, then the snapshots chunks in position order.
	Chunks []ChunkInfo `json:"chunks"`
}

// Source says where the records came from.
type Source struct {
	Kind    string `json:"kind"`              // SourceServer or SourceSegments
	Address string `json:"address,omitempty"` // server address (host:port), for SourceServer
	Path    string `json:"path,omitempty"`    // directory of the segment files, for SourceSegments
	Context string `json:"context"`           // Axon Server context
}

// Filter is the selection an export applied to events; nil means none. Events whose payload type is
// not in IncludeTypes (when not empty), is in ExcludeTypes, or whose aggregate type is not in
// AggregateTypes (when not empty) were left out.
type Filter struct {
	IncludeTypes   []string `json:"includeTypes,omitempty"`
	ExcludeTypes   []string `json:"excludeTypes,omitempty"`
	AggregateTypes []string `json:"aggregateTypes,omitempty"`
}

// Link points from an incremental archive to the archive it continues.
type Link struct {
	Fingerprint string `json:"fingerprint"` // the previous archive's fingerprint
	LastToken   int64  `json:"lastToken"`   // the previous archive's events.lastToken
}

// Range is an inclusive token range; Last = First-1 when it is empty.
type Range struct {
	First int64 `json:"first"`
	Last  int64 `json:"last"`
}

// Note records something a reader of the archive must know, such as a tail cut off an offline export
// (kind "tail-cut") or snapshots that could not be reached (kind "snapshots-unreachable"). Token is the
// token the note is about, or -1.
type Note struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
	Token  int64  `json:"token"`
}

// Gap is an inclusive token range inside the archive's range that holds no events, with its cause.
// Tokens left out by a Filter are not listed as gaps: they are counted in EventStream.Filtered.
type Gap struct {
	From  int64  `json:"from"`
	To    int64  `json:"to"`
	Cause string `json:"cause"`
}

// EventStream summarises the events stream.
type EventStream struct {
	FirstToken int64 `json:"firstToken"` // the token range the archive covers
	LastToken  int64 `json:"lastToken"`
	// Range is FirstToken..LastToken again, for convenience; Open and the Writer fill it. It is not
	// part of the JSON.
	Range      Range       `json:"-"`
	Count      int64       `json:"count"`    // events in the archive
	Filtered   int64       `json:"filtered"` // tokens in the range left out by the filter
	SHA256     string      `json:"sha256"`   // digest of the stream (see Fingerprint)
	Types      []TypeCount `json:"types"`
	OtherTypes int64       `json:"otherTypes"` // records whose type is beyond MaxTypes distinct types
}

// SnapshotStream summarises the snapshots stream.
type SnapshotStream struct {
	Mode       string      `json:"mode"` // SnapshotsAll, SnapshotsLatest or SnapshotsNone
	Count      int64       `json:"count"`
	SHA256     string      `json:"sha256"`
	Types      []TypeCount `json:"types"`
	OtherTypes int64       `json:"otherTypes"`
}

// TransactionStream summarises the transactions stream: Count transactions described by Runs lines
// (records), whose digest is SHA256. It is not part of the fingerprint, which covers the records alone.
type TransactionStream struct {
	Count  int64  `json:"count"`
	Runs   int64  `json:"runs"`
	SHA256 string `json:"sha256"`
}

// TypeCount is the number of records of one payload type. Records without a payload count under "".
type TypeCount struct {
	Type  string `json:"type"`
	Count int64  `json:"count"`
}

// MaxTypes bounds the per-type counts of a stream in the manifest: the first MaxTypes distinct payload
// types in record order are counted by type, the records of any further type in OtherTypes.
const MaxTypes = 10000

// Chunking records the rotation limits the writer used.
type Chunking struct {
	MaxBytes   int64 `json:"maxBytes"`
	MaxRecords int64 `json:"maxRecords"`
}

// ChunkInfo describes one chunk file.
type ChunkInfo struct {
	Path      string `json:"path"`   // relative to data/, e.g. "events/00000000000000000000.jsonl.zst"
	Stream    string `json:"stream"` // StreamEvents or StreamSnapshots
	Records   int64  `json:"records"`
	First     int64  `json:"first"` // token (events) or position (snapshots) of the first record
	Last      int64  `json:"last"`
	Size      int64  `json:"size"`      // bytes of the file
	SHA256    string `json:"sha256"`    // of the file
	RawSize   int64  `json:"rawSize"`   // bytes of the decompressed JSON Lines
	RawSHA256 string `json:"rawSha256"` // of the decompressed JSON Lines
}

// archivePath returns the chunk's path relative to the archive root.
func (c *ChunkInfo) archivePath() string { return dataDir + "/" + c.Path }

// marshalManifest writes the manifest as SPEC.md fixes it: members in field order, two-space indent,
// no HTML escaping, final LF.
func marshalManifest(m *Manifest) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parseManifest decodes and checks a manifest without trusting any of it. Every problem found is
// returned, joined, each an *Error for data/manifest.json wrapping ErrManifest (or ErrVersion or
// ErrNotArchive, alone, when the manifest is not one this version can read at all).
func parseManifest(b []byte) (*Manifest, error) {
	fail := func(sentinel error, format string, args ...any) error {
		return errorf(manifestPath, 0, -1, sentinel, format, args...)
	}
	if len(b) > maxManifestBytes {
		return nil, fail(ErrManifest, "larger than %d bytes", maxManifestBytes)
	}
	var head struct {
		Format  any `json:"format"`
		Version any `json:"version"`
	}
	if se := jsonline.CheckShape(b); se != nil {
		return nil, &Error{Path: manifestPath, Line: se.Line, Token: -1, Err: fmt.Errorf("%w: %w", ErrManifest, se)}
	}
	var v any
	if _, err := sjson.Parse(b, &v, sjson.UseNumber); err != nil {
		return nil, fail(ErrManifest, "invalid JSON: %v", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fail(ErrManifest, "not a JSON object")
	}
	head.Format, head.Version = obj["format"], obj["version"]
	if head.Format != formatName {
		return nil, fail(ErrNotArchive, "format is %s, not %q", describeJSON(head.Format), formatName)
	}
	if n, ok := head.Version.(sjson.Number); !ok {
		return nil, fail(ErrManifest, "version is %s, not an integer", describeJSON(head.Version))
	} else if ver, err := n.Int64(); err != nil || ver < MinVersion || ver > MaxVersion {
		return nil, fail(ErrVersion, "version %s (this axarchive reads versions %d to %d: upgrade axarchive)", n, MinVersion, MaxVersion)
	} else if err := schema.ValidateValue(schema.ManifestVersion(ver), v); err != nil {
		return nil, fail(ErrManifest, "%v", err)
	}
	m := new(Manifest)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fail(ErrManifest, "%v", err)
	}
	m.Events.Range = Range{First: m.Events.FirstToken, Last: m.Events.LastToken}
	if problems := checkManifest(m); len(problems) > 0 {
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = fail(ErrManifest, "%s", p)
		}
		return nil, joinErrors(errs)
	}
	return m, nil
}

func describeJSON(v any) string {
	if v == nil {
		return "missing"
	}
	b, _ := sjson.Marshal(v)
	return jsonline.Excerpt(b)
}

// checkManifest checks a schema-valid manifest for consistency. It never allocates from the counts it
// reads.
func checkManifest(m *Manifest) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	if m.Created.Location() != time.UTC || m.Created.Nanosecond() != 0 {
		add("created %s is not UTC in whole seconds", m.Created.Format(time.RFC3339Nano))
	}
	ev := &m.Events
	if ev.LastToken < ev.FirstToken-1 {
		add("events: lastToken %d is before firstToken %d", ev.LastToken, ev.FirstToken)
	}
	if m.Previous != nil && m.Previous.LastToken+1 != ev.FirstToken {
		add("events: firstToken %d does not follow the previous archive's lastToken %d", ev.FirstToken, m.Previous.LastToken)
	}
	if m.Filter == nil && ev.Filtered != 0 {
		add("events: filtered is %d but the archive has no filter", ev.Filtered)
	}
	if m.Snapshots.Mode == SnapshotsNone && m.Snapshots.Count != 0 {
		add("snapshots: count is %d but mode is %q", m.Snapshots.Count, SnapshotsNone)
	}
	if m.Version >= VersionTransactions && m.Transactions == nil && m.Encryption == "" {
		// Writers write the lowest version that describes an archive (SPEC 12): one without transactions
		// or encryption is version 1, and a version 2 claim there is no archive of ours.
		add("version 2 without a member of version 2 (transactions, encryption)")
	}
	switch m.Encryption {
	case "":
	case encryptionAge:
		if m.Version < versionEncryption {
			add("encryption: present in a version %d manifest (from version %d on)", m.Version, versionEncryption)
		}
	default:
		add("encryption: %q is not a known scheme (%q)", m.Encryption, encryptionAge)
	}
	if tx := m.Transactions; tx != nil {
		if m.Version < VersionTransactions {
			add("transactions: present in a version %d manifest (from version %d on)", m.Version, VersionTransactions)
		}
		if m.Filter != nil {
			add("transactions: present in a filtered archive")
		}
		if tx.Runs > tx.Count || tx.Count > ev.Count || (tx.Count == 0) != (ev.Count == 0) {
			add("transactions: %d transactions in %d runs cannot group %d events", tx.Count, tx.Runs, ev.Count)
		}
	}

	// Gaps: sorted, disjoint, inside the range.
	var gapTokens uint64
	gapsSorted := true
	prevTo := int64(math.MinInt64)
	for i, g := range m.Gaps {
		switch {
		case g.From > g.To:
			add("gap %d: from %d is after to %d", i, g.From, g.To)
			gapsSorted = false
		case g.From < ev.FirstToken || g.To > ev.LastToken:
			add("gap %d (%d-%d) is outside the range %d-%d", i, g.From, g.To, ev.FirstToken, ev.LastToken)
		case i > 0 && g.From <= prevTo:
			add("gap %d (%d-%d) overlaps or precedes the gap before it", i, g.From, g.To)
			gapsSorted = false
		default:
			gapTokens = addSat(gapTokens, uint64(g.To-g.From)+1)
		}
		prevTo = max(prevTo, g.To)
	}
	if ev.LastToken >= ev.FirstToken-1 {
		size := uint64(ev.LastToken-ev.FirstToken) + 1 // wraps to 0 for an empty range, as intended
		covered := addSat(addSat(uint64(ev.Count), uint64(ev.Filtered)), gapTokens)
		if covered != size {
			add("events: count %d + filtered %d + gap tokens %d do not make the %d tokens of the range %d-%d",
				ev.Count, ev.Filtered, gapTokens, size, ev.FirstToken, ev.LastToken)
		}
	}

	// Types.
	checkTypes := func(stream string, types []TypeCount, other, count int64) {
		sum := uint64(other)
		for i, t := range types {
			if i > 0 && types[i-1].Type >= t.Type {
				add("%s: types are not sorted and unique at %q", stream, t.Type)
			}
			sum = addSat(sum, uint64(t.Count))
		}
		if len(types) > MaxTypes {
			add("%s: %d types listed, more than %d", stream, len(types), MaxTypes)
		}
		if other > 0 && len(types) != MaxTypes {
			add("%s: otherTypes is %d with only %d types listed", stream, other, len(types))
		}
		if sum != uint64(count) {
			add("%s: the type counts add up to %d, not count %d", stream, sum, count)
		}
	}
	checkTypes("events", ev.Types, ev.OtherTypes, ev.Count)
	checkTypes("snapshots", m.Snapshots.Types, m.Snapshots.OtherTypes, m.Snapshots.Count)

	// Fingerprint.
	if fp, err := combineDigests(ev.SHA256, m.Snapshots.SHA256); err != nil || fp != m.Fingerprint {
		add("fingerprint %s is not the SHA-256 of the events and snapshots digests", m.Fingerprint)
	}

	// Chunks.
	gapIdx := 0
	seen := map[string]bool{}
	var sums [3]uint64
	var lasts = [3]int64{math.MinInt64, math.MinInt64, math.MinInt64}
	rank := 0 // chunks come in stream order: events, snapshots, transactions
	for i := range m.Chunks {
		c := &m.Chunks[i]
		where := fmt.Sprintf("chunk %d (%s)", i, c.Path)
		stream, first, ok := parseChunkName(c.Path)
		if !ok {
			add("%s: not a chunk path (events/ or snapshots/, 20 digits, .jsonl.zst)", where)
			continue
		}
		if seen[c.Path] {
			add("%s: listed twice", where)
			continue
		}
		if chunkEncrypted(c.Path) != (m.Encryption != "") {
			add("%s: an encrypted archive has only .age chunks, another none", where)
			continue
		}
		seen[c.Path] = true
		if stream != c.Stream {
			add("%s: stream %q does not match the path", where, c.Stream)
			continue
		}
		s := streamIndex(stream)
		if s < rank {
			add("%s: %s chunk listed after %s chunks", where, stream, streamNames[rank])
		}
		rank = max(rank, s)
		if s == 2 && m.Transactions == nil {
			add("%s: transactions chunk without a transactions member", where)
		}
		if first != c.First {
			add("%s: first %d does not match the name", where, c.First)
		}
		if c.Last < c.First {
			add("%s: last %d is before first %d", where, c.Last, c.First)
		} else if uint64(c.Last-c.First) < uint64(c.Records-1) {
			add("%s: %d records cannot have distinct tokens from %d to %d", where, c.Records, c.First, c.Last)
		}
		if c.First <= lasts[s] {
			add("%s: starts at %d, not after the previous chunk's last %d", where, c.First, lasts[s])
		}
		lasts[s] = max(lasts[s], c.Last)
		if c.RawSize/2 < c.Records || (c.RawSize-1)/maxRecordBytes >= c.Records {
			add("%s: rawSize %d is impossible for %d records", where, c.RawSize, c.Records)
		}
		if stream != StreamSnapshots && (c.First < ev.FirstToken || c.Last > ev.LastToken) {
			add("%s: tokens %d-%d are outside the range %d-%d", where, c.First, c.Last, ev.FirstToken, ev.LastToken)
		}
		if stream == StreamEvents && gapsSorted {
			// Chunks and gaps are both in token order: one walk over the gaps for all chunks (a loop
			// over the gaps per chunk made a manifest of many chunks and gaps cost their product).
			for gapIdx < len(m.Gaps) && m.Gaps[gapIdx].To < c.First {
				gapIdx++
			}
			for j := gapIdx; j < len(m.Gaps) && m.Gaps[j].From <= c.Last; j++ {
				if g := m.Gaps[j]; (c.First >= g.From && c.First <= g.To) || (c.Last >= g.From && c.Last <= g.To) {
					add("%s: starts or ends in the gap %d-%d", where, g.From, g.To)
				}
			}
		}
		sums[s] = addSat(sums[s], uint64(c.Records))
	}
	if sums[0] != uint64(ev.Count) {
		add("events: count %d, but the chunks hold %d records", ev.Count, sums[0])
	}
	if sums[1] != uint64(m.Snapshots.Count) {
		add("snapshots: count %d, but the chunks hold %d records", m.Snapshots.Count, sums[1])
	}
	if tx := m.Transactions; tx != nil && sums[2] != uint64(tx.Runs) {
		add("transactions: runs %d, but the chunks hold %d records", tx.Runs, sums[2])
	}
	return p
}

// streamNames are the streams in the order of their chunks in a manifest.
var streamNames = [3]string{StreamEvents, StreamSnapshots, StreamTransactions}

func streamIndex(stream string) int {
	switch stream {
	case StreamSnapshots:
		return 1
	case StreamTransactions:
		return 2
	}
	return 0
}

// addSat adds without wrapping around: a manifest cannot make a sum of huge counts come out right.
func addSat(a, b uint64) uint64 {
	if s, carry := bits.Add64(a, b, 0); carry == 0 {
		return s
	}
	return math.MaxUint64
}

// combineDigests computes the fingerprint from the hex digests of the two streams.
func combineDigests(events, snapshots string) (string, error) {
	e, err := hex.DecodeString(events)
	if err != nil || len(e) != sha256.Size {
		return "", fmt.Errorf("events digest %q is not a SHA-256", events)
	}
	s, err := hex.DecodeString(snapshots)
	if err != nil || len(s) != sha256.Size {
		return "", fmt.Errorf("snapshots digest %q is not a SHA-256", snapshots)
	}
	sum := sha256.Sum256(append(e, s...))
	return hex.EncodeToString(sum[:]), nil
}

// typeCounter counts records per payload type with the MaxTypes rule.
type typeCounter struct {
	counts map[string]*int64
	other  int64
}

func newTypeCounter() *typeCounter { return &typeCounter{counts: map[string]*int64{}} }

func (t *typeCounter) add(typ []byte) {
	if p, ok := t.counts[string(typ)]; ok {
		*p++
		return
	}
	if len(t.counts) >= MaxTypes {
		t.other++
		return
	}
	n := int64(1)
	t.counts[string(typ)] = &n
}

func (t *typeCounter) addString(typ string) {
	if p, ok := t.counts[typ]; ok {
		*p++
		return
	}
	if len(t.counts) >= MaxTypes {
		t.other++
		return
	}
	n := int64(1)
	t.counts[typ] = &n
}

func (t *typeCounter) list() []TypeCount {
	out := make([]TypeCount, 0, len(t.counts))
	for k, v := range t.counts {
		out = append(out, TypeCount{Type: k, Count: *v})
	}
	slices.SortFunc(out, func(a, b TypeCount) int { return strings.Compare(a.Type, b.Type) })
	return out
}

func typeCounterFrom(list []TypeCount, other int64) *typeCounter {
	t := newTypeCounter()
	for _, c := range list {
		n := c.Count
		t.counts[c.Type] = &n
	}
	t.other = other
	return t
}

// joinErrors is errors.Join that returns the single error itself when there is one, so that its message
// is not changed.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return &joinedError{errs: errs}
}

// joinedError is errors.Join's shape: Error joins the messages with newlines (one problem per line, as
// the command line prints them) and Unwrap exposes all of them to errors.Is and errors.As.
type joinedError struct{ errs []error }

func (e *joinedError) Error() string {
	var b strings.Builder
	for i, err := range e.errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *joinedError) Unwrap() []error { return e.errs }
