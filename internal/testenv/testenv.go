// Package testenv decides what a test does when a real component it needs (the real Axon Server, Java,
// Maven, PostgreSQL, zstd, …) is not on the machine: on a user's machine it skips with one line that says
// what is missing and how to get it; in CI (CI=true) it fails, because a CI run that skipped the tests
// against real components proved nothing about them.
package testenv

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// InCI reports whether the tests run in CI, where every real component must be present.
func InCI() bool {
	ci, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && ci
}

// Missing skips the test, or fails it in CI, naming what is missing and how to install it.
func Missing(tb testing.TB, what, hint string) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("CI=true and %s is missing (%s): a real-component test may not skip in CI", what, hint)
	}
	tb.Skipf("%s is missing (%s)", what, hint)
}

// LookPath returns the path of a program, or skips (fails in CI) naming the package that installs it.
func LookPath(tb testing.TB, program, hint string) string {
	tb.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		Missing(tb, program, hint)
	}
	return path
}
