package tokenstore

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// An empty store's head is no token: what is past it becomes NULL (Axon's createHeadToken is null then).
func TestPlanToHeadOfEmptyStore(t *testing.T) {
	rows := fixtureRows(t, "jdbc-jackson.sql")
	changes, err := Plan(rows, ToHead(-1), Options{Processors: []string{"gs-processor", "replay-processor", "fresh-processor"}, Now: fixtureNow})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 3 {
		t.Fatalf("%d changes, want 3 (fresh-processor is NULL already)", len(changes))
	}
	for _, c := range changes {
		if c.New.Token != nil || c.New.TokenType != nil || c.NewShow != "null" {
			t.Errorf("%s: %q %v", c.New, c.New.Token, c.New.TokenType)
		}
	}
}

// --to-tail resets the selected processors and nothing else; __config is never a processor.
func TestPlanToTail(t *testing.T) {
	rows := fixtureRows(t, "jdbc-xstream.sql")
	later := fixtureNow.Add(time.Minute) // claimed-processor's claim has expired
	changes, err := Plan(rows, ToTail(), Options{Processors: []string{"orders-projection", "claimed-processor"}, Now: later, ClaimTimeout: DefaultClaimTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 5 {
		t.Errorf("%d changes, want 5", len(changes))
	}
	for _, c := range changes {
		if c.New.Processor != "orders-projection" && c.New.Processor != "claimed-processor" {
			t.Errorf("changed %s", c.New)
		}
		if c.New.Owner != nil || *c.New.Timestamp != Timestamp(later) {
			t.Errorf("%s: owner %v, timestamp %s: a rewritten row is released and stamped", c.New, c.New.Owner, *c.New.Timestamp)
		}
	}
	if _, err := Plan(rows, ToTail(), Options{Processors: []string{"nosuch"}, Now: later}); err == nil || !strings.Contains(err.Error(), `no processor "nosuch"`) {
		t.Errorf("unknown processor: %v", err)
	}
	// The same at the moment the claim is live.
	if _, err := Plan(rows, ToTail(), Options{Processors: []string{"claimed-processor"}, Now: fixtureNow, ClaimTimeout: DefaultClaimTimeout}); !errors.Is(err, ErrClaimed) {
		t.Errorf("live claim: %v", err)
	}
}

// A truncated store (first token 90): positions before 89 are reported with --to-tail as the fix.
func TestCheckTruncatedStore(t *testing.T) {
	rows := fixtureRows(t, "jdbc-jackson.sql")
	findings, notes, err := Check(rows, Bounds{First: 90, Last: 200, Source: "test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range findings {
		got[f.Row.String()] = f.Fix + " " + f.Problem
	}
	for _, want := range []string{"gs-processor[0]", "merged-processor[0]", "split-processor[0]", "multi-source-processor[0]"} {
		if !strings.HasPrefix(got[want], "--to-tail ") {
			t.Errorf("%s: %q, want a --to-tail finding", want, got[want])
		}
	}
	if !strings.Contains(got["gs-processor[0]"], "events 42 to 89 are not in the store") {
		t.Errorf("gs-processor: %s", got["gs-processor[0]"])
	}
	if !strings.HasPrefix(got["ahead-processor[0]"], "--to-head ") || !strings.HasPrefix(got["claimed-processor[0]"], "--to-head ") {
		t.Errorf("ahead: %q, claimed: %q", got["ahead-processor[0]"], got["claimed-processor[0]"])
	}
	for _, ok := range []string{"orders-projection[0]", "head-initialized-processor[0]", "fresh-processor[0]"} {
		if _, bad := got[ok]; bad {
			t.Errorf("%s reported: %s", ok, got[ok])
		}
	}
	if len(notes) != 1 || notes[0].Row.Processor != "gap-aware-processor" {
		t.Errorf("notes: %v", notes)
	}
}
