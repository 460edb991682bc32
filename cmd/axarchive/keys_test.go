package main

import (
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
	testscript.Run(t, scriptParams(t, "../../testdata/script/keys", func(env *testscript.Env) error {
		env.Setenv("SSH_AUTH_SOCK", "") // the scripts' keys are files, never an agent's
		return nil
	}))
}
