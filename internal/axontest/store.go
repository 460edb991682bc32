package axontest

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"unicode/utf16"

	"google.golang.org/grpc/codes"
)

// axonError is an error as Axon Server reports it (AXON.md 2.9): a gRPC status whose description starts
// with "[<code>] " and the trailer AxonIQ-ErrorCode: <code>.
type axonError struct {
	status codes.Code
	code   string
	msg    string
	bare   bool // the description is msg alone, as in Axon Server's access-control refusals
}

func (e *axonError) Error() string {
	if e.bare {
		return e.msg
	}
	return "[" + e.code + "] " + e.msg
}

// Axon Server error codes used by the double (AXON.md 2.9).
const (
	codeOther           = "AXONIQ-0001"
	codeTokenMissing    = "AXONIQ-1000"
	codeTokenInvalid    = "AXONIQ-1001"
	codeContextNotFound = "AXONIQ-1302"
	codeInvalidSequence = "AXONIQ-2000"
	codeTooManyEvents   = "AXONIQ-2002"
	codeReadWrite       = "AXONIQ-9000"
)

// stored is one event of the store with the fields the server indexes.
type stored struct {
	raw  []byte
	info eventInfo
}

// aggIndex lists the tokens of an aggregate's domain events, in token order, with their sequences.
type aggIndex struct {
	tokens []int64
	seqs   []int64
}

func (a *aggIndex) last() int64 {
	if a == nil || len(a.seqs) == 0 {
		return -1
	}
	return a.seqs[len(a.seqs)-1]
}

// store is one context: its events, its snapshots and their indexes. All fields are guarded by mu.
type store struct {
	name string

	mu      sync.Mutex
	base    int64 // token of events[0]; above 0 only after RemoveBefore
	events  []stored
	aggs    map[string]*aggIndex
	snaps   []stored
	snapIdx map[string][]int // aggregate id -> indexes into snaps, domain snapshots only
	changed chan struct{}    // closed and replaced by every commit that stores something
	txns    []Transaction    // every committed transaction that stored something, in commit order
}

func newStore(name string) *store {
	return &store{
		name:    name,
		aggs:    make(map[string]*aggIndex),
		snapIdx: make(map[string][]int),
		changed: make(chan struct{}),
	}
}

// firstToken and lastToken answer GetFirstToken and GetLastToken (AXON.md 2.7). Callers hold mu.
func (s *store) firstToken() int64 { return s.base }
func (s *store) lastToken() int64  { return s.base + int64(len(s.events)) - 1 }

// commit validates and stores one transaction (AXON.md 2.3): every event or none, with consecutive tokens
// in the order given. It returns the token of the first event.
//
// Axon Server validates against a cache of last sequences that includes transactions still being written,
// and rolls a failed transaction's reservations back. The double validates and stores in one step under
// the lock, so a transaction in flight is never half-visible and a failed one leaves nothing behind: the
// observable behaviour is the same.
func (s *store) commit(txn []stored, maxEvents int) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if maxEvents > 0 && len(txn) > maxEvents {
		return 0, &axonError{codes.InvalidArgument, codeTooManyEvents,
			fmt.Sprintf("Too many events in transaction: %d, maximum is %d", len(txn), maxEvents), false}
	}
	if err := s.validate(txn); err != nil {
		return 0, err
	}
	first := s.lastToken() + 1
	if len(txn) == 0 {
		return first, nil
	}
	s.events = slices.Grow(s.events, len(txn))
	record := Transaction{First: first, Events: len(txn)}
	for i, ev := range txn {
		record.Bytes += len(ev.raw)
		token := first + int64(i)
		s.events = append(s.events, ev)
		if ev.info.domain {
			a := s.aggs[string(ev.info.aggregateID)]
			if a == nil {
				a = &aggIndex{}
				s.aggs[string(ev.info.aggregateID)] = a
			}
			a.tokens = append(a.tokens, token)
			a.seqs = append(a.seqs, ev.info.sequence)
		}
	}
	s.txns = append(s.txns, record)
	close(s.changed)
	s.changed = make(chan struct{})
	return first, nil
}

// validate applies AXON.md 2.3's sequence rule to the domain events of a transaction in the two passes of
// Axon Server SE (SequenceNumberCache): first each aggregate's events must follow one another within the
// transaction (the first break in send order is reported); then each aggregate's first sequence in the
// transaction must be its last stored sequence + 1 (0 for a new aggregate), checked in the iteration order
// of the Java HashMap the server collects the aggregates in, so that of several aggregates that fail, the
// double names the one the real server names. Callers hold mu.
func (s *store) validate(txn []stored) error {
	type minMax struct {
		id       string
		min, max int64
	}
	var order []*minMax // in order of first appearance
	var seen map[string]*minMax
	for _, ev := range txn {
		if !ev.info.domain {
			continue
		}
		m := seen[string(ev.info.aggregateID)] // no allocation for the lookup
		if m == nil {
			if seen == nil {
				seen = make(map[string]*minMax)
			}
			m = &minMax{id: string(ev.info.aggregateID), min: ev.info.sequence, max: ev.info.sequence - 1}
			seen[m.id] = m
			order = append(order, m)
		}
		if seq := ev.info.sequence; seq != m.max+1 {
			return sequenceError(seq, m.id, m.max+1)
		}
		m.max = ev.info.sequence
	}
	if len(order) > 1 {
		ids := make([]string, len(order))
		for i, m := range order {
			ids[i] = m.id
		}
		perm := javaHashMapOrder(ids)
		sorted := make([]*minMax, len(order))
		for i, j := range perm {
			sorted[i] = order[j]
		}
		order = sorted
	}
	for _, m := range order {
		if next := s.aggs[m.id].last() + 1; m.min != next {
			return sequenceError(m.min, m.id, next)
		}
	}
	return nil
}

func sequenceError(seq int64, id string, expected int64) error {
	return &axonError{codes.OutOfRange, codeInvalidSequence,
		fmt.Sprintf("Invalid sequence number %d for aggregate %s, expected %d", seq, id, expected), false}
}

// javaHashMapOrder returns the indexes of keys (distinct, in insertion order) in the order a java.util.HashMap
// with default settings iterates them: by bucket (the spread String.hashCode masked by the table size, which
// doubles whenever the map holds more than 3/4 of it), and in insertion order within a bucket. (A bucket of
// more than 8 keys becomes a tree whose order can differ; sequence errors naming such a key may differ from
// the real server's.)
func javaHashMapOrder(keys []string) []int {
	capacity := 16
	for len(keys) > capacity*3/4 {
		capacity *= 2
	}
	bucket := make([]int, len(keys))
	for i, k := range keys {
		h := javaStringHash(k)
		h ^= int32(uint32(h) >> 16)
		bucket[i] = int(h) & (capacity - 1)
	}
	perm := make([]int, len(keys))
	for i := range perm {
		perm[i] = i
	}
	slices.SortStableFunc(perm, func(a, b int) int { return bucket[a] - bucket[b] })
	return perm
}

// javaStringHash is Java's String.hashCode: over the UTF-16 code units, h = 31*h + unit, in 32 bits.
func javaStringHash(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			h = 31*h + int32(hi)
			h = 31*h + int32(lo)
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}

// appendSnapshot stores a snapshot under AXON.md 2.4's rule.
func (s *store) appendSnapshot(ev stored, checkSequence bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if checkSequence {
		if highest := s.aggs[string(ev.info.aggregateID)].last(); highest < ev.info.sequence {
			return &axonError{codes.OutOfRange, codeInvalidSequence, fmt.Sprintf(
				"Invalid sequence number while storing snapshot. Highest aggregate %s sequence number: %d, snapshot sequence %d.",
				ev.info.aggregateID, highest, ev.info.sequence), false}
		}
	}
	s.snaps = append(s.snaps, ev)
	if ev.info.domain {
		id := string(ev.info.aggregateID)
		s.snapIdx[id] = append(s.snapIdx[id], len(s.snaps)-1)
	}
	return nil
}

// read returns up to max events from token next on, and a channel closed by the next commit, to wait on
// when there is nothing to read yet. It fails if next lies before the first stored token.
func (s *store) read(next int64, max int) ([][]byte, <-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if next < s.base {
		return nil, nil, &axonError{codes.Canceled, codeOther,
			fmt.Sprintf("%s: token %d before start of event store", s.name, next), false}
	}
	from := next - s.base
	if from >= int64(len(s.events)) {
		return nil, s.changed, nil
	}
	to := min(from+int64(max), int64(len(s.events)))
	// Copy the references: ReplaceEvent may swap an element once the lock is released.
	out := make([][]byte, 0, to-from)
	for _, ev := range s.events[from:to] {
		out = append(out, ev.raw)
	}
	return out, s.changed, nil
}

// tokenAt answers GetTokenAt (AXON.md 2.7). Axon Server scans segments newest to oldest and, in the first
// one whose first event is dated at or before instant, returns the first event dated at or after instant
// (or that segment's last token + 1); if no segment qualifies, the first token. The double has no
// segments, so it treats the whole store as a single segment: if the first event is dated after instant,
// the first token; otherwise the first event in token order dated at or after instant, or the last token
// + 1. An empty store answers -1.
func (s *store) tokenAt(instant int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	// SE 2023 answers an empty store with its first token, 0 (AXON.md 2.7 said -1, from 4.6's source).
	if len(s.events) == 0 || s.events[0].info.timestamp > instant {
		return s.base
	}
	for i, ev := range s.events {
		if ev.info.timestamp >= instant {
			return s.base + int64(i)
		}
	}
	return s.lastToken() + 1
}

func (s *store) highestSequence(aggregateID string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aggs[aggregateID].last()
}

// aggregateEvents answers ListAggregateEvents (AXON.md 2.5): domain events of the aggregate with
// initial <= sequence < maxSeq (maxSeq <= 0: no upper bound), preceded, with allowSnapshots, by the newest
// stored snapshot in that range (flagged) and then only the events after it.
func (s *store) aggregateEvents(aggregateID string, initial, maxSeq int64, allowSnapshots bool) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if maxSeq <= 0 {
		maxSeq = math.MaxInt64
	}
	var out [][]byte
	from := initial
	if allowSnapshots {
		idx := s.snapIdx[aggregateID]
		for i := len(idx) - 1; i >= 0; i-- {
			snap := s.snaps[idx[i]]
			if seq := snap.info.sequence; seq >= initial && seq < maxSeq {
				out = append(out, withSnapshotFlag(snap.raw))
				from = seq + 1
				break
			}
		}
	}
	a := s.aggs[aggregateID]
	if a == nil {
		return out
	}
	for i, seq := range a.seqs {
		token := a.tokens[i]
		if seq >= from && seq < maxSeq && token >= s.base {
			out = append(out, s.events[token-s.base].raw)
		}
	}
	return out
}

// aggregateSnapshots answers ListAggregateSnapshots (AXON.md 2.6): newest stored first, flagged,
// initial <= sequence < maxSeq, nothing for maxSeq <= 0; a positive maxResults limits the snapshots
// examined, including those the range then filters out.
func (s *store) aggregateSnapshots(aggregateID string, initial, maxSeq int64, maxResults int32) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if maxSeq <= 0 {
		return nil
	}
	var out [][]byte
	idx := s.snapIdx[aggregateID]
	examined := 0
	for i := len(idx) - 1; i >= 0; i-- {
		if maxResults > 0 && examined >= int(maxResults) {
			break
		}
		examined++
		snap := s.snaps[idx[i]]
		if seq := snap.info.sequence; seq >= initial && seq < maxSeq {
			out = append(out, withSnapshotFlag(snap.raw))
		}
	}
	return out
}

// replace swaps the bytes of a stored event, keeping the indexes, like editing a segment file in place.
func (s *store) replace(token int64, raw []byte) error {
	info, err := parseEvent(raw)
	if err != nil {
		return fmt.Errorf("replace event %d: %w", token, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.base || token > s.lastToken() {
		return fmt.Errorf("replace event %d: no such token in context %s", token, s.name)
	}
	old := &s.events[token-s.base]
	// The indexes keep pointing where they did; only the timestamp, read for GetTokenAt, follows the bytes.
	old.raw = raw
	old.info.timestamp = info.timestamp
	return nil
}

// replaceSnapshot swaps the bytes of a stored snapshot, keeping the index.
func (s *store) replaceSnapshot(index int, raw []byte) error {
	info, err := parseEvent(raw)
	if err != nil {
		return fmt.Errorf("replace snapshot %d: %w", index, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if index < 0 || index >= len(s.snaps) {
		return fmt.Errorf("replace snapshot %d: context %s holds %d snapshots", index, s.name, len(s.snaps))
	}
	if string(info.aggregateID) != string(s.snaps[index].info.aggregateID) {
		return fmt.Errorf("replace snapshot %d: aggregate %q, not %q", index, info.aggregateID, s.snaps[index].info.aggregateID)
	}
	s.snaps[index] = stored{raw: raw, info: info}
	return nil
}

// removeBefore drops the events below token, as retention removing old segments would.
func (s *store) removeBefore(token int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.base || token > s.lastToken()+1 {
		return fmt.Errorf("remove events before %d: context %s holds tokens %d to %d", token, s.name, s.base, s.lastToken())
	}
	s.events = slices.Clone(s.events[token-s.base:])
	s.base = token
	return nil
}
