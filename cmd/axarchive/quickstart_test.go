package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQuickstart runs README.md's first command (issue 4: export the bundled fixture directory into an
// archive and verify it, on a fresh machine with nothing but Go) as written, in process, with the
// output directory moved into a temporary directory. The fixture files it names must be committed, so
// that it works from a clean clone.
func TestQuickstart(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	block := regexp.MustCompile("(?s)```sh\n(.*?)```").FindSubmatch(readme)
	require.NotNil(t, block, "README.md has a sh block")
	var first string
	for _, line := range strings.Split(string(block[1]), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			first = line
			break
		}
	}
	m := regexp.MustCompile(`^(?:rm -rf \S+ && )?go run \./cmd/axarchive (export .*) && go run \./cmd/axarchive (verify .*)$`).FindStringSubmatch(first)
	require.NotNil(t, m, "README's first command is an export and a verify through go run: %q", first)
	export, verify := strings.Fields(m[1]), strings.Fields(m[2])

	// The segment directory exists, relative to the repository root, and is committed.
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	var segments, out, outDir string
	for i, a := range export {
		switch {
		case a == "--segments" && i+1 < len(export):
			segments = export[i+1]
			export[i+1] = filepath.Join(root, segments)
		case a == "-o" && i+1 < len(export):
			out = export[i+1]
			outDir = filepath.Join(t.TempDir(), filepath.Base(out))
			export[i+1] = outDir
		}
	}
	require.NotEmpty(t, segments, "the first command exports from --segments")
	require.NotEmpty(t, out, "the first command writes with -o")
	require.Equal(t, []string{"verify", out}, verify, "the first command verifies what it exported")
	entries, err := os.ReadDir(filepath.Join(root, segments))
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	if _, err := exec.LookPath("git"); err == nil {
		if _, err := os.Stat(filepath.Join(root, ".git")); err == nil {
			cmd := exec.Command("git", "ls-files", "--error-unmatch", "--", segments)
			cmd.Dir = root
			o, err := cmd.Output()
			require.NoError(t, err, "the fixture files of README's first command are not committed")
			assert.Equal(t, len(entries), len(strings.Fields(string(o))), "every file in %s is committed", segments)
		}
	}

	for _, args := range [][]string{export, {"verify", outDir}} {
		var stdout, stderr bytes.Buffer
		err := newApp(&stdout, &stderr).RunContext(context.Background(), append([]string{"axarchive"}, args...))
		require.NoError(t, err, "axarchive %s\n%s%s", strings.Join(args, " "), stdout.String(), stderr.String())
		assert.Equal(t, exitOK, exitCode(err))
		if args[0] == "verify" {
			assert.Regexp(t, `^ok `, stdout.String())
		}
	}
}
