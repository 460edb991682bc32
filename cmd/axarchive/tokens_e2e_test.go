package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/pgtest"
	"github.com/axarchive/axarchive/internal/realserver"
	"github.com/axarchive/axarchive/internal/tokenstore"
)

// mustCLI runs the command line in this process, as main does, and requires exit status want. (Not
// runCLI: its 30 s limit is tight for an import and its proof on a shared machine.)
func mustCLI(t *testing.T, want int, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	app := newApp(&stdout, &stderr)
	err := app.RunContext(ctx, append([]string{"axarchive"}, args...))
	if err != nil {
		printError(&stderr, err)
	}
	code, out, errs := exitCode(err), stdout.String(), stderr.String()
	if code != want {
		t.Fatalf("axarchive %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errs)
	}
	return out + errs
}

// positionsOf reads every processor's positions: processor[segment] → positions.
func positionsOf(t *testing.T, url string) map[string][]int64 {
	t.Helper()
	ctx := context.Background()
	s, err := tokenstore.OpenPostgres(ctx, url, tokenstore.PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	rows, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int64{}
	for _, r := range rows {
		if tok, err := r.Decode(); err == nil && tok != nil {
			out[r.String()] = tok.Positions()
		}
	}
	return out
}

// The seed failure and the renumbered import, end to end with the real Axon Server and a real
// PostgreSQL holding the token table Axon Framework wrote. The store the archives come from is the test
// double (one real server start is enough: on a shared machine each takes a minute or more).
func TestTokensEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real Axon Server")
	}
	realserver.Require(t)
	pg := pgtest.Get(t)
	ctx := context.Background()
	dir := t.TempDir()

	// The store as it was: 40 events, archived; then 20 more, which the processors also handled.
	live := axontest.NewServer(t)
	conn, err := axonclient.Dial(ctx, axonclient.Config{Address: live.Addr(), Context: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gen := eventgen.New(18, eventgen.Options{Aggregates: 5})
	var events [][]byte
	var aggregateType string
	for i := 0; i < 60; i++ {
		e := gen.NextEvent()
		events = append(events, eventgen.Encode(&e))
		if i >= 45 && aggregateType == "" {
			aggregateType = e.AggregateType // the events of other types are left out: holes in the map
		}
	}
	if err := conn.AppendEvents(ctx, events[:40]); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old")
	mustCLI(t, 0, "export", "--server", live.Addr(), "--context", "default", "-o", old)
	if err := conn.AppendEvents(ctx, events[40:]); err != nil {
		t.Fatal(err)
	}
	filtered := filepath.Join(dir, "filtered")
	mustCLI(t, 0, "export", "--server", live.Addr(), "--context", "default", "--from-token", "40", "--aggregate-type", aggregateType, "-o", filtered)

	// The projections' database, restored first: tokens up to and past 59 (the fixture's processors).
	projections, err := pg.CreateDB()
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.LoadFile(projections, pgtest.Fixture(t, "jdbc-jackson.sql")); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, projections, `DELETE FROM tokenentry WHERE processorname = 'gap-aware-processor'`)
	db := pg.URL(projections)

	// The event store restored from the older archive: 0 to 39.
	restored := realserver.Fresh(t)
	mustCLI(t, 0, "import", "--server", restored.Addr(), "--context", "default", old)

	// check: the processors past 39 are named, exit 4, with the rewrite that fixes it.
	out := mustCLI(t, 4, "tokens", "check", "--db", db, "--server", restored.Addr(), "--context", "default")
	for _, want := range []string{
		"ahead-processor[0]: token 1000000: position 1000000 past the store's last token 39",
		"gs-processor[0]: token 41: position 41 past the store's last token 39",
		"replay-processor[1]: token Replay(reset=500, current=250): positions 500, 250 past",
		"hint: axarchive tokens rewrite --to-head --processor ahead-processor",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tokens check says\n%s\nwithout %q", out, want)
		}
	}
	if strings.Contains(out, "multi-source-processor") {
		t.Errorf("multi-source-processor (5, 9) is consistent:\n%s", out)
	}
	mustCLI(t, 0, "tokens", "rewrite", "--db", db, "--to-head", "--server", restored.Addr(), "--backup", filepath.Join(dir, "head.json"))
	out = mustCLI(t, 0, "tokens", "check", "--db", db, "--server", restored.Addr(), "--context", "default")
	if !strings.Contains(out, "consistent") {
		t.Errorf("after the rewrite: %s", out)
	}
	got := positionsOf(t, db)
	for row, want := range map[string]string{
		"ahead-processor[0]": "[39]", "gs-processor[0]": "[39]", "multi-source-processor[0]": "[5 9]",
		"replay-merged-processor[0]": "[39 39 10]", "replay-processor[1]": "[39 39]",
	} {
		if fmt.Sprint(got[row]) != want {
			t.Errorf("%s after --to-head: %v, want %s", row, got[row], want)
		}
	}

	// A renumbered import into a non-empty server: the old store's events 40 to 59 of one aggregate
	// type (the aggregates continue where the restored store ends, so their sequences fit), appended to
	// the restored store (0 to 39) from 40 on.
	tokenMap := filepath.Join(dir, "filtered.tokenmap")
	mustCLI(t, 0, "import", "--server", restored.Addr(), "--context", "default", "--renumber", "--token-map", tokenMap, filtered)
	listed, headBefore := readMap(t, tokenMap)
	if headBefore != 39 {
		t.Fatalf("head before the import %d, want 39", headBefore)
	}
	// Processors of the live store at every position from 39 (before the import's first event) to 59:
	// listed ones and left-out ones, so that both neighbours of every hole are exercised.
	var positions []int64
	for x := int64(39); x < 60; x++ {
		positions = append(positions, x)
	}
	mapped, err := pg.CreateDB()
	if err != nil {
		t.Fatal(err)
	}
	var sql strings.Builder
	sql.WriteString(`CREATE TABLE tokenentry (processorname varchar(255) NOT NULL, segment integer NOT NULL, token bytea, tokentype varchar(255), "timestamp" varchar(255), owner varchar(255), PRIMARY KEY (processorname, segment));`)
	const gst = "org.axonframework.eventhandling.GlobalSequenceTrackingToken"
	for i, x := range positions {
		fmt.Fprintf(&sql, `INSERT INTO tokenentry VALUES ('p', %d, convert_to('<%s><globalIndex>%d</globalIndex></%s>', 'UTF8'), '%s', '2026-01-01T00:00:00.000Z', NULL);`, i, gst, x, gst, gst)
	}
	// A replay over the merge of two segments, in Jackson's form.
	fmt.Fprintf(&sql, `INSERT INTO tokenentry VALUES ('r', 0, convert_to('{"tokenAtReset":{"@class":"org.axonframework.eventhandling.MergedTrackingToken","lowerSegmentToken":{"@c":".GlobalSequenceTrackingToken","globalIndex":39},"upperSegmentToken":{"@c":".GlobalSequenceTrackingToken","globalIndex":%d}},"currentToken":{"@class":"%s","globalIndex":%d},"context":null}', 'UTF8'), 'org.axonframework.eventhandling.ReplayToken', '2026-01-01T00:00:00.000Z', NULL);`, firstUnlisted(t, listed), gst, firstUnlisted(t, listed)+1)
	pg.Exec(t, mapped, sql.String())
	mdb := pg.URL(mapped)
	target, err := axonclient.Dial(ctx, axonclient.Config{Address: restored.Addr(), Context: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	before := positionsOf(t, mdb)
	out = mustCLI(t, 4, "tokens", "check", "--db", mdb, "--token-map", tokenMap, "--server", restored.Addr())
	if !strings.Contains(out, fmt.Sprintf("position %d not an archive token of", firstUnlisted(t, listed))) {
		t.Errorf("check --token-map does not name the unlisted position:\n%s", out)
	}
	mustCLI(t, 0, "tokens", "rewrite", "--db", mdb, "--token-map", tokenMap, "--backup", filepath.Join(dir, "map.json"))
	after := positionsOf(t, mdb)

	fa, err := archive.Open(filtered)
	if err != nil {
		t.Fatal(err)
	}
	for row, old := range before {
		for i, x := range old {
			want := expectTarget(listed, headBefore, x)
			if after[row][i] != want {
				t.Errorf("%s position %d → %d, the map says %d", row, x, after[row][i], want)
			}
		}
		if !strings.HasPrefix(row, "p[") {
			continue
		}
		// An Axon reader opens the stream at position + 1: it must read the event after the one the
		// processor had handled, i.e. the archive's first event after x.
		x := old[0]
		it := fa.Events(ctx, x+1)
		if !it.Next() {
			it.Close()
			continue // x was the archive's last event: nothing follows
		}
		rec, err := it.Record()
		it.Close()
		if err != nil {
			t.Fatal(err)
		}
		next := readEvent(t, target, after[row][0]+1)
		if !bytes.Equal(next, codec.Encode(nil, rec)) {
			t.Errorf("%s: at %d (was %d) the reader would next read target token %d, which is not archive token %d", row, after[row][0], x, after[row][0]+1, rec.Token)
		}
	}
}

// readMap reads a token map written by import --renumber.
func readMap(t *testing.T, path string) (map[int64]int64, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[int64]int64{}
	head := int64(-2)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "# target head before the import: "); ok {
			head, _ = strconv.ParseInt(v, 10, 64)
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		var a, b int64
		if _, err := fmt.Sscan(line, &a, &b); err != nil {
			t.Fatalf("%s: %q", path, line)
		}
		m[a] = b
	}
	return m, head
}

// expectTarget is the README's rule, written independently: a listed position goes to its target; an
// unlisted one to the target of the largest listed archive token below it, or the head before the
// import when there is none.
func expectTarget(listed map[int64]int64, headBefore, x int64) int64 {
	for a := x; a >= 0; a-- {
		if t, ok := listed[a]; ok {
			return t
		}
	}
	return headBefore
}

func firstUnlisted(t *testing.T, listed map[int64]int64) int64 {
	t.Helper()
	for x := int64(41); x < 60; x++ {
		if _, ok := listed[x]; !ok {
			return x
		}
	}
	t.Fatal("the filter left nothing out")
	return 0
}

// readEvent reads the event at token from the server, as a tracking processor's stream would.
func readEvent(t *testing.T, conn *axonclient.Conn, token int64) []byte {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := conn.ListEvents(ctx, token, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, raw, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got != token {
		t.Fatalf("asked for token %d, got %d", token, got)
	}
	return append([]byte(nil), raw...)
}
