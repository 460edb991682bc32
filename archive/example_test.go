package archive_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive"
)

func tempDir() string {
	dir, err := os.MkdirTemp("", "axarchive-example")
	if err != nil {
		log.Fatal(err)
	}
	return filepath.Join(dir, "archive")
}

// exampleOptions describes an export of tokens 0 to 2 of context "default", read from segment files.
func exampleOptions() archive.Options {
	return archive.Options{
		Source:  manifest.Source{Kind: manifest.SourceSegments, Path: "/var/lib/axonserver/data/default", Context: "default"},
		Range:   manifest.Range{First: 0, Last: 2},
		Tool:    "example",
		Created: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
	}
}

func exampleEvent(token int64) *archive.Record {
	return &archive.Record{
		Token: token, MessageID: fmt.Sprintf("m%d", token),
		AggregateID: "order-1", AggregateType: "Order", Sequence: token,
		Timestamp: 1714521600000 + token,
		Payload:   &archive.Object{Type: "OrderPlaced", Revision: "1", Data: []byte(`{"id":"order-1"}`)},
		Metadata:  []archive.Meta{{Key: "traceId", Kind: archive.MetaText, Text: "abc"}},
	}
}

func ExampleCreate() {
	dir := tempDir()
	defer os.RemoveAll(filepath.Dir(dir))

	w, err := archive.Create(dir, exampleOptions())
	if err != nil {
		log.Fatal(err)
	}
	for token := int64(0); token <= 2; token++ {
		if err := w.WriteEvent(exampleEvent(token)); err != nil {
			w.Suspend() // leave it resumable
			log.Fatal(err)
		}
	}
	if err := w.FinishEvents(); err != nil {
		log.Fatal(err)
	}
	// Snapshots would follow here, with w.WriteSnapshot.
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	a, err := archive.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	m := a.Manifest()
	fmt.Println(m.Events.Count, "events in", len(m.Chunks), "chunk:", m.Chunks[0].Path)
	// Output: 3 events in 1 chunk: events/00000000000000000000.jsonl.zst
}

func ExampleResume() {
	dir := tempDir()
	defer os.RemoveAll(filepath.Dir(dir))
	opts := exampleOptions()
	opts.ChunkRecords = 1 // commit every event, for the example

	w, err := archive.Create(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	w.WriteEvent(exampleEvent(0))
	w.WriteEvent(exampleEvent(1)) // commits the chunk of token 0
	w.Suspend()                   // interrupted: token 1 was not committed

	_, err = archive.Open(dir)
	fmt.Println(err != nil)

	w, err = archive.Resume(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("resuming at token", w.NextToken())
	for token := w.NextToken(); token <= w.Options().Range.Last; token++ {
		if err := w.WriteEvent(exampleEvent(token)); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// true
	// resuming at token 1
}

func ExampleOpen() {
	dir := tempDir()
	defer os.RemoveAll(filepath.Dir(dir))
	w, _ := archive.Create(dir, exampleOptions())
	for token := int64(0); token <= 2; token++ {
		w.WriteEvent(exampleEvent(token))
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	a, err := archive.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	it := a.Events(context.Background(), 1) // from token 1
	defer it.Close()
	for it.Next() {
		r, err := it.Record()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(it.Token(), r.MessageID, r.Payload.Type)
	}
	if err := it.Err(); err != nil { // checked: sizes, digests, counts, tokens
		log.Fatal(err)
	}
	// Output:
	// 1 m1 OrderPlaced
	// 2 m2 OrderPlaced
}

func ExampleArchive_Verify() {
	dir := tempDir()
	defer os.RemoveAll(filepath.Dir(dir))
	w, _ := archive.Create(dir, exampleOptions())
	for token := int64(0); token <= 2; token++ {
		w.WriteEvent(exampleEvent(token))
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	// Damage the archive: a file that is not listed.
	os.WriteFile(filepath.Join(dir, "data", "events", "notes.txt"), []byte("hello"), 0o644)

	a, err := archive.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	report, err := a.Verify(context.Background(), archive.VerifyOptions{
		Problem: func(p *archive.Error) { fmt.Println("problem in", p.Path) }, // p.Error() says what
	})
	fmt.Println(report.Events, "events checked;", err)
	// Output:
	// problem in data/events/notes.txt
	// problem in bag-info.txt
	// 3 events checked; verification failed: 2 problems
}

func ExampleFingerprint() {
	// The fingerprint of a stream read elsewhere (a live context, say) is computed from the same lines.
	var fp archive.Fingerprint
	for token := int64(0); token <= 2; token++ {
		fp.WriteEventLine(archive.AppendEventJSON(nil, exampleEvent(token)))
	}
	fmt.Println(len(fp.Sum()))
	// Output: 64
}

func ExampleOpenChain() {
	base, err := os.MkdirTemp("", "axarchive-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(base)
	write := func(dir string, opts archive.Options) *archive.Archive {
		w, err := archive.Create(dir, opts)
		if err != nil {
			log.Fatal(err)
		}
		for token := opts.Range.First; token <= opts.Range.Last; token++ {
			w.WriteEvent(exampleEvent(token))
		}
		if err := w.Close(); err != nil {
			log.Fatal(err)
		}
		a, err := archive.Open(dir)
		if err != nil {
			log.Fatal(err)
		}
		return a
	}
	full := write(filepath.Join(base, "full"), exampleOptions())
	// The incremental export continues where the full one ended.
	opts := exampleOptions()
	opts.Range = manifest.Range{First: 3, Last: 4}
	opts.Previous = &manifest.Link{Fingerprint: full.Manifest().Fingerprint, LastToken: full.Manifest().Events.LastToken}
	write(filepath.Join(base, "incr"), opts)

	chain, err := archive.OpenChain([]string{filepath.Join(base, "full"), filepath.Join(base, "incr")})
	if err != nil {
		log.Fatal(err) // an archive that does not open, or archives that do not follow each other
	}
	fmt.Println("tokens", chain.Range().First, "to", chain.Range().Last)
	it := chain.Events(context.Background(), 2)
	defer it.Close()
	for it.Next() {
		fmt.Print(it.Token(), " ")
	}
	fmt.Println(it.Err())
	// Output:
	// tokens 0 to 4
	// 2 3 4 <nil>
}
