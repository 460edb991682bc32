package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Every fixture dump loads into a fresh database, and each test's database is its own.
func TestLoadFixtures(t *testing.T) {
	for _, tc := range []struct{ file, table string }{
		{"jdbc-xstream.sql", "tokenentry"}, {"jdbc-jackson.sql", "tokenentry"},
		{"jpa-xstream.sql", "token_entry"}, {"jpa-jackson.sql", "token_entry"},
	} {
		db := NewDB(t)
		db.Load(t, Fixture(t, tc.file))
		ctx := context.Background()
		c, err := pgx.Connect(ctx, db.URL())
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM "+tc.table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		if n != 20 {
			t.Errorf("%s: %d rows, want 20", tc.file, n)
		}
	}
}
