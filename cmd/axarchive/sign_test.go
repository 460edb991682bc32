package main

import (
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/axarchive/axarchive/internal/testenv"
)

// TestSignScript runs the scripts in testdata/script/sign, which check signatures both ways with the real
// OpenSSH ssh-keygen. $ARCHIVES and $FIXTURES are as in TestScript.
func TestSignScript(t *testing.T) {
	testenv.LookPath(t, "ssh-keygen", "apt-get install openssh-client")
	archives, err := filepath.Abs("../../testdata/archives/v1")
	if err != nil {
		t.Fatal(err)
	}
	fixtures, err := filepath.Abs("../../testdata/segments")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "../../testdata/script/sign",
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
