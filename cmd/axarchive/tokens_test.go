package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/axarchive/axarchive/internal/pgtest"
)

// TestTokensScript runs the scripts in testdata/script/tokens against a real PostgreSQL (internal/pgtest).
// $ARCHIVES is as in TestScript, $TOKENSTORE is testdata/tokenstore (the Axon Framework dumps).
//
// Command added:
//
//	pgdb VAR FILE...        create a fresh database, run the SQL files in it (psql), set $VAR to its URL
//	pguser VAR USER URL     set $VAR to URL with USER as the user
func TestTokensScript(t *testing.T) {
	server := pgtest.Get(t)
	dumps, err := filepath.Abs("../../testdata/tokenstore")
	if err != nil {
		t.Fatal(err)
	}
	p := scriptParams(t, "../../testdata/script/tokens", func(env *testscript.Env) error {
		env.Setenv("TOKENSTORE", dumps)
		return nil
	})
	for name, cmd := range map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"pgdb": func(ts *testscript.TestScript, neg bool, args []string) {
			if neg || len(args) < 1 {
				ts.Fatalf("usage: pgdb VAR FILE...")
			}
			name, err := server.CreateDB()
			ts.Check(err)
			for _, f := range args[1:] {
				ts.Check(server.LoadFile(name, ts.MkAbs(f)))
			}
			ts.Setenv(args[0], server.URL(name))
		},
		"pguser": func(ts *testscript.TestScript, neg bool, args []string) {
			if neg || len(args) != 3 {
				ts.Fatalf("usage: pguser VAR USER URL")
			}
			ts.Setenv(args[0], strings.Replace(args[2], "://postgres@", "://"+args[1]+"@", 1))
		},
	} {
		p.Cmds[name] = cmd
	}
	testscript.Run(t, p)
}
