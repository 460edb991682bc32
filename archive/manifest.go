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

	"github.com/axarchive/axarchive/archive/manifest"

	sjson "github.com/segmentio/encoding/json"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
	"github.com/axarchive/axarchive/schema"
)

// archivePath returns the path relative to the archive root of a chunk path relative to data/.
func archivePath(rel string) string { return dataDir + "/" + rel }

// marshalManifest writes the manifest as SPEC.md fixes it: members in field order, two-space indent,
// no HTML escaping, final LF.
func marshalManifest(m *manifest.Manifest) ([]byte, error) {
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
func parseManifest(b []byte) (*manifest.Manifest, error) {
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
	m := new(manifest.Manifest)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fail(ErrManifest, "%v", err)
	}
	m.Events.Range = manifest.Range{First: m.Events.FirstToken, Last: m.Events.LastToken}
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
func checkManifest(m *manifest.Manifest) []string {
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
	if m.Snapshots.Mode == manifest.SnapshotsNone && m.Snapshots.Count != 0 {
		add("snapshots: count is %d but mode is %q", m.Snapshots.Count, manifest.SnapshotsNone)
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
	checkTypes := func(stream string, types []manifest.TypeCount, other, count int64) {
		sum := uint64(other)
		for i, t := range types {
			if i > 0 && types[i-1].Type >= t.Type {
				add("%s: types are not sorted and unique at %q", stream, t.Type)
			}
			sum = addSat(sum, uint64(t.Count))
		}
		if len(types) > manifest.MaxTypes {
			add("%s: %d types listed, more than %d", stream, len(types), manifest.MaxTypes)
		}
		if other > 0 && len(types) != manifest.MaxTypes {
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
		if stream != manifest.StreamSnapshots && (c.First < ev.FirstToken || c.Last > ev.LastToken) {
			add("%s: tokens %d-%d are outside the range %d-%d", where, c.First, c.Last, ev.FirstToken, ev.LastToken)
		}
		if stream == manifest.StreamEvents && gapsSorted {
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
var streamNames = [3]string{manifest.StreamEvents, manifest.StreamSnapshots, manifest.StreamTransactions}

func streamIndex(stream string) int {
	switch stream {
	case manifest.StreamSnapshots:
		return 1
	case manifest.StreamTransactions:
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
	if len(t.counts) >= manifest.MaxTypes {
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
	if len(t.counts) >= manifest.MaxTypes {
		t.other++
		return
	}
	n := int64(1)
	t.counts[typ] = &n
}

func (t *typeCounter) list() []manifest.TypeCount {
	out := make([]manifest.TypeCount, 0, len(t.counts))
	for k, v := range t.counts {
		out = append(out, manifest.TypeCount{Type: k, Count: *v})
	}
	slices.SortFunc(out, func(a, b manifest.TypeCount) int { return strings.Compare(a.Type, b.Type) })
	return out
}

func typeCounterFrom(list []manifest.TypeCount, other int64) *typeCounter {
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
