package tokenstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/axarchive/axarchive/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// fixtureNow is a moment after the fixtures were written, when their one live claim (claimed-processor,
// stored at 18:55:27.573) is still valid.
var fixtureNow = time.Date(2026, 12, 6, 18, 55, 30, 0, time.UTC)

func loadFixture(t *testing.T, file string, alter ...string) (*pgtest.DB, *Postgres) {
	t.Helper()
	return loadFixtureWith(t, PostgresOptions{}, file, alter...)
}

func loadFixtureWith(t *testing.T, opts PostgresOptions, file string, alter ...string) (*pgtest.DB, *Postgres) {
	t.Helper()
	db := pgtest.NewDB(t)
	db.Load(t, pgtest.Fixture(t, file))
	for _, sql := range alter {
		db.Exec(t, sql)
	}
	s, err := OpenPostgres(context.Background(), db.URL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return db, s
}

func shown(t *testing.T, rows []Row) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range rows {
		tok, err := r.Decode()
		switch {
		case err != nil:
			out[r.String()] = "error"
		case tok == nil:
			out[r.String()] = "null"
		default:
			out[r.String()] = tok.Root.String()
		}
	}
	return out
}

// Every layout Axon creates on PostgreSQL is found in the catalogue and read back as Axon reads it.
func TestReadLayouts(t *testing.T) {
	const toHibernate = `ALTER TABLE token_entry RENAME TO tokenentry; ALTER TABLE tokenentry RENAME processor_name TO processorname; ALTER TABLE tokenentry RENAME token_type TO tokentype`
	for _, tc := range []struct {
		name, file string
		alter      []string
		describe   string
		opts       PostgresOptions
	}{
		{"jdbc xstream", "jdbc-xstream.sql", nil, "table public.tokenentry, token column token bytea", PostgresOptions{}},
		{"jdbc jackson", "jdbc-jackson.sql", nil, "table public.tokenentry, token column token bytea", PostgresOptions{}},
		{"jpa spring naming, oid", "jpa-xstream.sql", nil, "table public.token_entry, token column token oid (large objects)", PostgresOptions{}},
		{"jpa jackson, oid", "jpa-jackson.sql", nil, "table public.token_entry, token column token oid (large objects)", PostgresOptions{}},
		{"jpa plain hibernate naming", "jpa-xstream.sql", []string{toHibernate}, "table public.tokenentry, token column token oid (large objects)", PostgresOptions{}},
		{"jpa migrated to bytea", "jpa-jackson.sql", []string{`ALTER TABLE token_entry ALTER token TYPE bytea USING lo_get(token)`}, "table public.token_entry, token column token bytea", PostgresOptions{}},
		{"axon 5 mask column", "jdbc-jackson.sql", []string{`ALTER TABLE tokenentry ADD mask integer NOT NULL DEFAULT 0`}, "mask column (Axon Framework 5)", PostgresOptions{}},
		{"custom TokenSchema", "jdbc-xstream.sql", []string{`CREATE SCHEMA app; ALTER TABLE tokenentry SET SCHEMA app; ALTER TABLE app.tokenentry RENAME TO my_tokens; ALTER TABLE app.my_tokens RENAME processorname TO proc; ALTER TABLE app.my_tokens RENAME "timestamp" TO ts`},
			"table app.my_tokens", PostgresOptions{Table: "app.my_tokens", Columns: map[string]string{"processorName": "proc", "timestamp": "ts"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, s := loadFixtureWith(t, tc.opts, tc.file, tc.alter...)
			if !strings.Contains(s.Describe(), tc.describe) {
				t.Errorf("Describe: %s, want %q in it", s.Describe(), tc.describe)
			}
			if strings.Contains(s.Describe(), "password") {
				t.Errorf("Describe shows a password: %s", s.Describe())
			}
			rows, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := shown(t, rows)
			for k, want := range fixtureTokens {
				if got[k] != want {
					t.Errorf("%s: %s, want %s", k, got[k], want)
				}
			}
			if len(rows) != 20 {
				t.Errorf("%d rows, want 20", len(rows))
			}
		})
	}
}

var rewritable = []string{"ahead-processor", "orders-projection", "replay-processor", "merged-processor",
	"multi-source-processor", "replay-merged-processor", "gs-processor", "split-processor", "fresh-processor"}

// --to-head moves what is past the head to it and nothing else, in one transaction; a backup holds the
// old rows and Restore puts them back exactly. With large objects the old objects are unlinked.
func TestRewriteToHeadAndRestore(t *testing.T) {
	for _, file := range []string{"jdbc-xstream.sql", "jpa-jackson.sql"} {
		t.Run(file, func(t *testing.T) {
			ctx := context.Background()
			db, s := loadFixture(t, file)
			before, err := s.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			los := countLargeObjects(t, db)
			backup := filepath.Join(t.TempDir(), "backup.json")
			opts := Options{Processors: rewritable, Now: fixtureNow, ClaimTimeout: DefaultClaimTimeout}
			res, err := Rewrite(ctx, s, func([]Row) (Mode, error) { return ToHead(100), nil }, opts, backup, false)
			if err != nil {
				t.Fatal(err)
			}
			after, err := s.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"ahead-processor[0]":         "100",
				"orders-projection[1]":       "100",
				"orders-projection[3]":       "100",
				"replay-processor[0]":        "Replay(reset=100, current=null)",
				"replay-processor[1]":        "Replay(reset=100, current=100)",
				"replay-merged-processor[0]": "Replay(reset=Merged(100, 100), current=10)",
			}
			if len(res.Changes) != len(want) {
				t.Errorf("%d changes, want %d", len(res.Changes), len(want))
			}
			got, old := shown(t, after), shown(t, before)
			for i, r := range after {
				k := r.String()
				if w, ok := want[k]; ok {
					if got[k] != w {
						t.Errorf("%s: %s, want %s", k, got[k], w)
					}
					if r.Owner != nil || *r.Timestamp != Timestamp(fixtureNow) || *r.TokenType != *before[i].TokenType {
						t.Errorf("%s: owner %v, timestamp %v, type %v", k, r.Owner, *r.Timestamp, *r.TokenType)
					}
					continue
				}
				if string(r.Token) != string(before[i].Token) || deref(r.Timestamp) != deref(before[i].Timestamp) || got[k] != old[k] {
					t.Errorf("%s changed: %s → %s", k, old[k], got[k])
				}
			}
			if n := countLargeObjects(t, db); n != los {
				t.Errorf("%d large objects after the rewrite, %d before: the old ones must be unlinked", n, los)
			}
			_, backupRows, err := ReadBackup(backup)
			if err != nil {
				t.Fatal(err)
			}
			// A segment deleted since the rewrite (a merge) is inserted again.
			table, proc := "tokenentry", "processorname"
			if s.LargeObjects() {
				table, proc = "token_entry", "processor_name"
			}
			if s.LargeObjects() {
				db.Exec(t, "SELECT lo_unlink(token) FROM "+table+" WHERE "+proc+" = 'orders-projection' AND segment = 3")
			}
			db.Exec(t, "DELETE FROM "+table+" WHERE "+proc+" = 'orders-projection' AND segment = 3")
			if _, err := Restore(ctx, s, backupRows, Options{Now: fixtureNow, ClaimTimeout: DefaultClaimTimeout}); err != nil {
				t.Fatal(err)
			}
			restored, err := s.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range restored {
				b := before[i]
				if r.String() != b.String() || string(r.Token) != string(b.Token) || deref(r.Timestamp) != deref(b.Timestamp) || deref(r.Owner) != deref(b.Owner) || deref(r.TokenType) != deref(b.TokenType) {
					t.Errorf("%s not restored", r)
				}
			}
			if n := countLargeObjects(t, db); n != los {
				t.Errorf("%d large objects after the restore, %d before", n, los)
			}
		})
	}
}

func countLargeObjects(t *testing.T, db *pgtest.DB) int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, db.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_largeobject_metadata").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A rewrite refuses, changing nothing, a token it cannot rewrite exactly and a claimed processor.
func TestRewriteRefuses(t *testing.T) {
	ctx := context.Background()
	_, s := loadFixture(t, "jdbc-xstream.sql")
	before, _ := s.Read(ctx)
	dir := t.TempDir()
	try := func(opts Options) error {
		opts.ClaimTimeout, opts.Now = DefaultClaimTimeout, fixtureNow
		_, err := Rewrite(ctx, s, func([]Row) (Mode, error) { return ToHead(0), nil }, opts, filepath.Join(dir, "b.json"), false)
		return err
	}
	err := try(Options{})
	for _, want := range []string{"gap-aware-processor[0]", "GapAwareTrackingToken"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("all processors: %v, want it to name %s", err, want)
		}
	}
	if err := try(Options{Processors: []string{"claimed-processor"}}); !errors.Is(err, ErrClaimed) || !strings.Contains(err.Error(), "fixture-node@host") {
		t.Errorf("claimed: %v", err)
	}
	if err := try(Options{Processors: []string{ConfigProcessor}}); err == nil || !strings.Contains(err.Error(), "never rewritten") {
		t.Errorf("__config: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.json")); err == nil {
		t.Error("a refused rewrite wrote a backup")
	}
	after, _ := s.Read(ctx)
	for i := range after {
		if string(after[i].Token) != string(before[i].Token) {
			t.Errorf("%s changed by a refused rewrite", after[i])
		}
	}
	// With --force the claimed one is rewritten (and released).
	if err := try(Options{Processors: []string{"claimed-processor"}, Force: true}); err != nil {
		t.Fatal(err)
	}
}

// A row whose bytes are not its token type is refused, naming the table's row; nothing changes.
func TestMalformedRow(t *testing.T) {
	ctx := context.Background()
	_, s := loadFixture(t, "jpa-xstream.sql",
		`UPDATE token_entry SET token_type = 'org.axonframework.eventhandling.MergedTrackingToken' WHERE processor_name = 'gs-processor'`)
	backup := filepath.Join(t.TempDir(), "b.json")
	_, err := Rewrite(ctx, s, func([]Row) (Mode, error) { return ToHead(0), nil },
		Options{Processors: []string{"gs-processor", "ahead-processor"}, Now: fixtureNow}, backup, false)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "gs-processor[0]") || !strings.Contains(err.Error(), "MergedTrackingToken") {
		t.Errorf("%v", err)
	}
	rows, _ := s.Read(ctx)
	if got := shown(t, rows)["ahead-processor[0]"]; got != "1000000" {
		t.Errorf("ahead-processor changed to %s", got)
	}
}

// Tables that are no token table, a role without privileges, a wrong address: clear errors.
func TestOpenBadInput(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	db.Exec(t, `CREATE TABLE tokenentry (processorname text, segment int, token text, tokentype text, "timestamp" text, owner text)`)
	if _, err := OpenPostgres(ctx, db.URL(), PostgresOptions{}); !errors.Is(err, ErrNotTokenTable) || !strings.Contains(err.Error(), "public.tokenentry: column token is text") {
		t.Errorf("text token column: %v", err)
	}
	if _, err := OpenPostgres(ctx, db.URL(), PostgresOptions{Table: "orders"}); !errors.Is(err, ErrNotTokenTable) || !strings.Contains(err.Error(), "no table orders") {
		t.Errorf("--table orders: %v", err)
	}
	db.Exec(t, `CREATE TABLE orders (id int, segment int)`)
	if _, err := OpenPostgres(ctx, db.URL(), PostgresOptions{Table: "public.orders"}); !errors.Is(err, ErrNotTokenTable) || !strings.Contains(err.Error(), "has no processorName column") {
		t.Errorf("--table public.orders: %v", err)
	}
	empty := pgtest.NewDB(t)
	if _, err := OpenPostgres(ctx, empty.URL(), PostgresOptions{}); !errors.Is(err, ErrNotTokenTable) || !strings.Contains(err.Error(), "no token table") {
		t.Errorf("empty database: %v", err)
	}

	// A role that may connect but not read the table.
	fx, _ := loadFixture(t, "jdbc-jackson.sql")
	role := "nopriv_" + fx.Name
	fx.Exec(t, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		fx.Exec(t, "DROP OWNED BY "+role)
		fx.Server.Exec(t, "postgres", "DROP ROLE "+role)
	})
	fx.Exec(t, "GRANT SELECT (processorname, segment, token, tokentype, \"timestamp\", owner) ON tokenentry TO "+role)
	noWrite := strings.Replace(fx.URL(), "postgres@", role+"@", 1)
	s, err := OpenPostgres(ctx, noWrite, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	_, err = Rewrite(ctx, s, func([]Row) (Mode, error) { return ToHead(0), nil }, Options{Processors: []string{"ahead-processor"}, Now: fixtureNow}, filepath.Join(t.TempDir(), "b"), false)
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "public.tokenentry") {
		t.Errorf("no UPDATE privilege: %v", err)
	}

	// Nothing listens there.
	bad := strings.Replace(fx.URL(), "postgres@127.0.0.1:", "postgres:secret@127.0.0.1:1", 1)
	if _, err := OpenPostgres(ctx, bad, PostgresOptions{}); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("wrong port: %v (must fail without showing the password)", err)
	}
	if _, err := OpenPostgres(ctx, "postgres://u:secret@[::1", PostgresOptions{}); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("malformed URL: %v (must fail without showing the password)", err)
	}
}

// Axon Framework 5: a mask column and the tokens' new package. The rewrite keeps both.
func TestAxon5Layout(t *testing.T) {
	ctx := context.Background()
	const af4, af5 = "org.axonframework.eventhandling.", "org.axonframework.messaging.eventhandling.processing.streaming.token."
	_, s := loadFixture(t, "jdbc-jackson.sql",
		`DELETE FROM tokenentry WHERE processorname IN ('multi-source-processor', 'gap-aware-processor', '__config')`,
		`ALTER TABLE tokenentry ADD mask integer NOT NULL DEFAULT 0`,
		`UPDATE tokenentry SET mask = segment + 7`,
		`UPDATE tokenentry SET tokentype = replace(tokentype, '`+af4+`', '`+af5+`'), token = convert_to(replace(convert_from(token, 'UTF8'), '`+af4+`', '`+af5+`'), 'UTF8') WHERE token IS NOT NULL`)
	backup := filepath.Join(t.TempDir(), "b.json")
	res, err := Rewrite(ctx, s, func([]Row) (Mode, error) { return ToHead(100), nil }, Options{Now: fixtureNow, Force: true}, backup, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 7 { // ahead, claimed, orders[1], orders[3], replay[0], replay[1], replay-merged
		t.Errorf("%d changes, want 7", len(res.Changes))
	}
	rows, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := shown(t, rows)
	for k, want := range map[string]string{"ahead-processor[0]": "100", "replay-processor[1]": "Replay(reset=100, current=100)", "gs-processor[0]": "41"} {
		if got[k] != want {
			t.Errorf("%s: %s, want %s", k, got[k], want)
		}
	}
	for _, r := range rows {
		if r.Mask == nil || *r.Mask != r.Segment+7 {
			t.Errorf("%s: mask %v", r, r.Mask)
		}
		if r.TokenType != nil && !strings.HasPrefix(*r.TokenType, af5) {
			t.Errorf("%s: token type %s", r, *r.TokenType)
		}
	}
	if _, err := Restore(ctx, s, mustBackup(t, backup), Options{Now: fixtureNow, Force: true}); err != nil {
		t.Fatal(err)
	}
}

func mustBackup(t *testing.T, path string) []Row {
	t.Helper()
	_, rows, err := ReadBackup(path)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
