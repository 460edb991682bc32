package main

import (
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/axarchive/axarchive/internal/testenv"
)

// TestKeysScript runs the scripts in testdata/script/keys, which check signatures and encryption both
// ways with the real OpenSSH ssh-keygen and age. $ARCHIVES and $FIXTURES are as in TestScript.
func TestKeysScript(t *testing.T) {
	testenv.LookPath(t, "ssh-keygen", "apt-get install openssh-client")
	testenv.LookPath(t, "age", "apt-get install age")
	testenv.LookPath(t, "age-keygen", "apt-get install age")
	testenv.LookPath(t, "zstd", "apt-get install zstd")
	archives, err := filepath.Abs("../../testdata/archives/v1")
	if err != nil {
		t.Fatal(err)
	}
	fixtures, err := filepath.Abs("../../testdata/segments")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "../../testdata/script/keys",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			env.Setenv("ARCHIVES", archives)
			env.Setenv("FIXTURES", fixtures)
			env.Setenv("SSH_AUTH_SOCK", "")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"cpdir":    cmdCpdir,
			"exitcode": cmdExitcode,
		},
	})
}
