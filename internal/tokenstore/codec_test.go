package tokenstore

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// fixtureRows reads the rows of a JdbcTokenStore dump (pg_dump --inserts) without a database.
func fixtureRows(t testing.TB, name string) []Row {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "tokenstore", name))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^INSERT INTO public\.tokenentry VALUES \('([^']*)', (\d+), (NULL|'\\x([0-9a-f]*)'), (NULL|'([^']*)'), (NULL|'([^']*)'), (NULL|'([^']*)')\);$`)
	var rows []Row
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		seg, _ := strconv.Atoi(m[2])
		r := Row{Processor: m[1], Segment: int32(seg)}
		if m[3] != "NULL" {
			r.Token, _ = hex.DecodeString(m[4])
		}
		opt := func(all, v string) *string {
			if all == "NULL" {
				return nil
			}
			return &v
		}
		r.TokenType, r.Timestamp, r.Owner = opt(m[5], m[6]), opt(m[7], m[8]), opt(m[9], m[10])
		rows = append(rows, r)
	}
	if len(rows) != 20 {
		t.Fatalf("%s: %d rows, want 20", name, len(rows))
	}
	return rows
}

// What Axon itself reads back from the fixtures (testdata/tokenstore/*.decoded.txt), in our notation.
var fixtureTokens = map[string]string{
	"gs-processor[0]":               "41",
	"claimed-processor[0]":          "1234",
	"fresh-processor[0]":            "null",
	"head-initialized-processor[0]": "99",
	"head-initialized-processor[1]": "99",
	"orders-projection[0]":          "100",
	"orders-projection[1]":          "101",
	"orders-projection[2]":          "97",
	"orders-projection[3]":          "103",
	"replay-processor[0]":           "Replay(reset=500, current=null)",
	"replay-processor[1]":           "Replay(reset=500, current=250)",
	"merged-processor[0]":           "Merged(70, 65)",
	"split-processor[0]":            "80",
	"split-processor[1]":            "81",
	"split-processor[2]":            "80",
	"multi-source-processor[0]":     "MultiSource{eventStoreA=5, eventStoreB=9, notYetStarted=null}",
	"replay-merged-processor[0]":    "Replay(reset=Merged(300, 290), current=10)",
	"ahead-processor[0]":            "1000000",
}

func TestDecodeFixtures(t *testing.T) {
	for _, file := range []string{"jdbc-xstream.sql", "jdbc-jackson.sql"} {
		wantFormat := FormatXStream
		if strings.Contains(file, "jackson") {
			wantFormat = FormatJackson
		}
		for _, r := range fixtureRows(t, file) {
			tok, err := r.Decode()
			switch r.Processor {
			case ConfigProcessor, "gap-aware-processor":
				if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), r.String()) {
					t.Errorf("%s %s: %v, want ErrUnsupported naming the row", file, r, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s %s: %v", file, r, err)
				continue
			}
			got := "null"
			if tok != nil {
				got = tok.Root.String()
				if tok.Format != wantFormat {
					t.Errorf("%s %s: format %s", file, r, tok.Format)
				}
				if same := tok.Rewrite(func(p int64) int64 { return p }); string(same) != string(r.Token) {
					t.Errorf("%s %s: identity rewrite changed the bytes:\n%s\n%s", file, r, same, r.Token)
				}
				moved := tok.Rewrite(func(p int64) int64 { return p*1000 + 7 })
				back, err := Decode(*r.TokenType, moved)
				if err != nil {
					t.Fatalf("%s %s: rewritten token: %v", file, r, err)
				}
				old, now := tok.Positions(), back.Positions()
				for i := range old {
					if now[i] != old[i]*1000+7 {
						t.Errorf("%s %s: position %d became %d", file, r, old[i], now[i])
					}
				}
			}
			if want := fixtureTokens[r.String()]; got != want {
				t.Errorf("%s %s: %s, want %s", file, r, got, want)
			}
		}
	}
}

// Everything but the digits of the positions stays byte for byte: the replay's context, class
// attributes, the multi-source map's kind and its null entry, Jackson's @class and @c.
func TestRewriteKeepsEverythingElse(t *testing.T) {
	for _, tc := range []struct{ typ, in, want string }{
		{"org.axonframework.eventhandling.ReplayToken",
			`<org.axonframework.eventhandling.ReplayToken><tokenAtReset class="org.axonframework.eventhandling.GlobalSequenceTrackingToken"><globalIndex>500</globalIndex></tokenAtReset><context class="string">reset-ctx &amp; 500</context></org.axonframework.eventhandling.ReplayToken>`,
			`<org.axonframework.eventhandling.ReplayToken><tokenAtReset class="org.axonframework.eventhandling.GlobalSequenceTrackingToken"><globalIndex>1500</globalIndex></tokenAtReset><context class="string">reset-ctx &amp; 500</context></org.axonframework.eventhandling.ReplayToken>`},
		{"org.axonframework.eventhandling.ReplayToken",
			`{"tokenAtReset":{"@class":"org.axonframework.eventhandling.GlobalSequenceTrackingToken","globalIndex":500},"currentToken":{"@class":"org.axonframework.eventhandling.GlobalSequenceTrackingToken","globalIndex":250},"context":{"globalIndex":500,"x":[1,2]}}`,
			`{"tokenAtReset":{"@class":"org.axonframework.eventhandling.GlobalSequenceTrackingToken","globalIndex":1500},"currentToken":{"@class":"org.axonframework.eventhandling.GlobalSequenceTrackingToken","globalIndex":1250},"context":{"globalIndex":500,"x":[1,2]}}`},
		{"org.axonframework.eventhandling.ReplayToken",
			`{"tokenAtReset":{"@class":"org.axonframework.eventhandling.GlobalSequenceTrackingToken","globalIndex":7},"resetContext":"x"}`,
			`{"tokenAtReset":{"@class":"org.axonframework.eventhandling.GlobalSequenceTrackingToken","globalIndex":1007},"resetContext":"x"}`},
		{"org.axonframework.eventhandling.MultiSourceTrackingToken",
			`{"trackingTokens":{"b":{"@c":".GlobalSequenceTrackingToken","globalIndex":9},"a":null}}`,
			`{"trackingTokens":{"b":{"@c":".GlobalSequenceTrackingToken","globalIndex":1009},"a":null}}`},
		// Axon Framework 5's class names.
		{"org.axonframework.messaging.eventhandling.processing.streaming.token.MergedTrackingToken",
			`{"lowerSegmentToken":{"@c":".GlobalSequenceTrackingToken","globalIndex":70},"upperSegmentToken":{"@c":".GlobalSequenceTrackingToken","globalIndex":65}}`,
			`{"lowerSegmentToken":{"@c":".GlobalSequenceTrackingToken","globalIndex":1070},"upperSegmentToken":{"@c":".GlobalSequenceTrackingToken","globalIndex":1065}}`},
	} {
		tok, err := Decode(tc.typ, []byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := string(tok.Rewrite(func(p int64) int64 { return p + 1000 })); got != tc.want {
			t.Errorf("rewrite of\n%s\ngave\n%s\nwant\n%s", tc.in, got, tc.want)
		}
	}
}

// Tokens that cannot be rewritten exactly, or whose bytes are not their type, are refused with a reason.
func TestDecodeRefuses(t *testing.T) {
	const gst = "org.axonframework.eventhandling.GlobalSequenceTrackingToken"
	for _, tc := range []struct {
		typ, in string
		want    error
		says    string
	}{
		{gst, "\xac\xed\x00\x05sr", ErrUnsupported, "Java-serialized"},
		{gst, "\xa1kglobalIndex\x18)", ErrUnsupported, "CBOR"},
		{"org.axonframework.eventhandling.GapAwareTrackingToken", `{"index":60,"gaps":[55,58]}`, ErrUnsupported, "JDBC/JPA"},
		{"com.example.MyToken", `{"globalIndex":1}`, ErrUnsupported, "unknown token type com.example.MyToken"},
		{gst, `{"globalIndex":1,"extra":2}`, ErrUnsupported, "unknown field extra"},
		{gst, `{"globalIndex":1.5}`, ErrMalformed, "not a whole number"},
		{gst, `{"globalIndex":"1"}`, ErrMalformed, "numeric globalIndex"},
		{gst, `{"globalIndex":1,"globalIndex":2}`, ErrMalformed, "twice"},
		{gst, `<org.axonframework.eventhandling.ReplayToken><tokenAtReset/></org.axonframework.eventhandling.ReplayToken>`, ErrMalformed, "the token type says " + gst},
		{gst, `<org.axonframework.eventhandling.GlobalSequenceTrackingToken><globalIndex>4 1</globalIndex></org.axonframework.eventhandling.GlobalSequenceTrackingToken>`, ErrMalformed, "not a whole number"},
		{gst, `<org.axonframework.eventhandling.GlobalSequenceTrackingToken><globalIndex>41</globalIndex>`, ErrMalformed, "not closed"},
		{"org.axonframework.eventhandling.ReplayToken", `<org.axonframework.eventhandling.ReplayToken><tokenAtReset class="org.axonframework.eventhandling.GlobalSequenceTrackingToken"><globalIndex>5</globalIndex></tokenAtReset><currentToken reference="../tokenAtReset"/></org.axonframework.eventhandling.ReplayToken>`, ErrUnsupported, "reference"},
	} {
		_, err := Decode(tc.typ, []byte(tc.in))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: %v, want %v saying %q", tc.in, err, tc.want, tc.says)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, file := range []string{"jdbc-xstream.sql", "jdbc-jackson.sql"} {
		for _, r := range fixtureRows(f, file) {
			if r.TokenType != nil {
				f.Add(*r.TokenType, r.Token)
			}
		}
	}
	f.Fuzz(func(t *testing.T, typ string, raw []byte) {
		tok, err := Decode(typ, raw)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error without a kind: %v", err)
			}
			return
		}
		if same := tok.Rewrite(func(p int64) int64 { return p }); string(same) != string(raw) {
			t.Fatalf("identity rewrite changed the bytes")
		}
		moved := tok.Rewrite(func(p int64) int64 { return p/2 + 3 })
		back, err := Decode(typ, moved)
		if err != nil {
			t.Fatalf("rewritten token does not decode: %v\n%q", err, moved)
		}
		old, now := tok.Positions(), back.Positions()
		if len(old) != len(now) {
			t.Fatalf("%d positions became %d", len(old), len(now))
		}
		for i := range old {
			if now[i] != old[i]/2+3 {
				t.Fatalf("position %d became %d", old[i], now[i])
			}
		}
		_ = tok.Root.String()
	})
}
