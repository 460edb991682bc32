package main

// What the user sees, and the exit status, are decided here and nowhere else:
//
//   - Messages go to stderr as "axarchive: error: …", "axarchive: warning: …" or "axarchive: hint: …":
//     lower case, no final period, one problem per line (an error whose message has several lines,
//     such as a list of problems, prints each line with the prefix).
//   - Hints come from hint(err), keyed on errors.Is and errors.As, never on message text.
//   - The exit status comes from exitCode(err); main is the only caller of os.Exit.
//   - No stack traces, no %+v.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/job"
	"github.com/axarchive/axarchive/internal/reader"
	"github.com/axarchive/axarchive/internal/s3store"
	"github.com/axarchive/axarchive/internal/sshsig"
	"github.com/axarchive/axarchive/internal/tokenstore"
	"github.com/axarchive/axarchive/internal/writer"
)

// Exit statuses (documented in exitStatusHelp, README.md and each command's description).
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInvalid     = 3
	exitDiffers     = 4
	exitInterrupted = 130
)

// usageError is a problem with the command line: exit status 2.
type usageError struct {
	msg  string
	hint string
}

func (e *usageError) Error() string { return e.msg }

// usageErrorf returns a usage error.
func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// invalidErrors make the exit status 3: the archive (or backup) itself is not right.
var invalidErrors = []error{
	archive.ErrVerify, archive.ErrIncomplete, archive.ErrNotArchive, archive.ErrVersion, archive.ErrManifest,
	archive.ErrCorrupt, archive.ErrBag, archive.ErrRecord, archive.ErrSequence, archive.ErrTooLarge,
	archive.ErrChain, errBackupDamaged, errSegmentsIncomplete, archive.ErrIdentity,
	// A signature that --allowed-signers asked for and that is missing, malformed, for another purpose,
	// not of this archive or by a key nobody vouches for: the archive is not proved authentic.
	archive.ErrUnsigned, sshsig.ErrMalformed, sshsig.ErrMismatch, sshsig.ErrNamespace, sshsig.ErrNotAllowed,
	// Token tables: a row that is not what its token type says, a token that cannot be rewritten exactly,
	// a table that is no token table, a damaged token map or backup.
	tokenstore.ErrMalformed, tokenstore.ErrUnsupported, tokenstore.ErrNotTokenTable, tokenstore.ErrTokenMap,
	tokenstore.ErrBackup,
	// The segment files an export reads: damage there is the input's, as with a damaged archive.
	reader.ErrCorrupt, reader.ErrChecksum, reader.ErrTruncated, reader.ErrGap, reader.ErrOverlap,
	reader.ErrUnsupported, reader.ErrTooLarge, reader.ErrNotSegment,
}

func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, archive.ErrEncrypted):
		// An encrypted archive read without --identity: the command line lacks what the input needs.
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, errTargetDiffers), errors.Is(err, tokenstore.ErrInconsistent):
		return exitDiffers
	}
	for _, target := range invalidErrors {
		if errors.Is(err, target) {
			return exitInvalid
		}
	}
	return exitError
}

// printError prints err, one line per line of its message, and its hint.
func printError(w io.Writer, err error) {
	msg := errorText(err)
	if errors.Is(err, context.Canceled) && !strings.Contains(msg, "\n") &&
		!errors.As(err, new(*job.InterruptedError)) && !errors.As(err, new(*job.ProgressError)) &&
		!errors.As(err, new(*interruptedBeforeSending)) {
		msg = "interrupted"
	}
	for _, line := range strings.Split(msg, "\n") {
		fmt.Fprintf(w, "axarchive: error: %s\n", line)
	}
	if h := hint(err); h != "" {
		fmt.Fprintf(w, "axarchive: hint: %s\n", h)
	}
}

// errorText is err's message as the user sees it: the library's, with what to do about an incomplete
// archive said where the library names it (the library's errors carry no command-line advice).
func errorText(err error) string {
	msg := err.Error()
	if errors.Is(err, archive.ErrIncomplete) {
		sentinel := archive.ErrIncomplete.Error()
		msg = strings.ReplaceAll(msg, sentinel, sentinel+" (run export with --resume)")
	}
	return msg
}

// hint says what to do about err, or "".
func hint(err error) string {
	var ue *usageError
	var ce *continueError
	switch {
	case errors.As(err, &ue):
		if ue.hint != "" {
			return ue.hint
		}
		return "run axarchive --help for usage"
	case errors.As(err, &ce):
		return ce.hint
	case errors.As(err, new(*job.PreviousError)) && errors.Is(err, archive.ErrIncomplete):
		// Before ErrIncomplete: the directory to resume is the previous archive's, not this export's.
		return "the archive given to --since is an interrupted export: complete it first (its own export command with --resume), then run this one again"
	case errors.Is(err, archive.ErrIncomplete):
		return "the directory holds an interrupted export: run the same export command with --resume to complete it"
	case errors.Is(err, archive.ErrVersion):
		return fmt.Sprintf("upgrade axarchive: this one reads archive format versions %d to %d", archive.MinVersion, archive.MaxVersion)
	case errors.Is(err, job.ErrEmpty):
		return "check --context (on a server that keeps contexts apart, a mistyped name is an empty context); to archive an empty context on purpose, add --allow-empty"
	case errors.Is(err, archive.ErrComplete):
		return "the archive in that directory is complete: nothing to resume (axarchive verify DIR checks it); to export newer events, export into a new directory with --since DIR"
	case errors.Is(err, s3store.ErrNoObjectLock):
		return "retention needs a bucket created with Object Lock enabled; use such a bucket, or leave out --retain-until and --legal-hold"
	case errors.Is(err, archive.ErrNotEmpty):
		return "choose a new directory, or add --resume to continue an export interrupted in it"
	case errors.Is(err, archive.ErrMismatch):
		return "resume with the same source, filters, --snapshots, --since and --sign-key as the interrupted export"
	case errors.Is(err, archive.ErrEncrypted):
		return "give --identity FILE: an age identity file or SSH private key of one of the archive's recipients (verify --quick checks the encrypted files without one)"
	case errors.Is(err, archive.ErrIdentity):
		return "the archive was encrypted to other keys: give an identity of one of its recipients"
	case errors.Is(err, archive.ErrUnsigned):
		return "the archive has no signature: if you trust its content (it verifies, and its fingerprint matches a record you keep), sign it with axarchive sign --sign-key KEY DIR"
	case errors.Is(err, sshsig.ErrNotAllowed):
		return "the archive was signed with a key that is not in the allowed signers file: find out whose key it is before you trust it (ssh-keygen -Y find-principals, or compare the fingerprint)"
	case errors.Is(err, sshsig.ErrNamespace):
		return "the signature was made for another purpose than an axarchive archive (ssh-keygen -Y sign -n axarchive makes one)"
	case errors.Is(err, sshsig.ErrMismatch), errors.Is(err, sshsig.ErrMalformed):
		return "the signature is not one of this archive's tag manifest: the archive or its signature was changed or replaced after signing; restore both from another copy"
	case errors.Is(err, archive.ErrChain):
		return "give the archives oldest first: each must have been exported with --since the one before it"
	case errors.Is(err, reader.ErrNotSegment):
		return "the directory is not a usable copy as it is: put the real segment file in that entry's place, or move the entry out of the directory if it holds no data the copy needs, then check it again with axarchive segments DIR"
	case errors.As(err, new(*reader.SegmentError)):
		// Before the InterruptedError case: --resume would stop at the same damage.
		return "the segment files are damaged or incomplete: axarchive segments DIR shows what is missing or damaged; to archive what is readable, export into a new directory with --to-token set to the token before the damage"
	case errors.As(err, new(*job.InterruptedError)):
		return "run the same command with --resume to continue; what is committed is kept"
	case errors.Is(err, axonclient.ErrUnauthorized):
		return "check the access token (--access-token-file or $" + tokenEnv + ") and that it may use this context"
	case errors.Is(err, axonclient.ErrTLS):
		return "check --tls, --ca-cert and the client certificate against the server's TLS settings"
	case errors.Is(err, axonclient.ErrUnavailable):
		return "check --server (Axon Server's gRPC port, 8124 by default) and the network"
	case errors.Is(err, axonclient.ErrSingleContext):
		return "leave out --context (or give --context default): Axon Server SE has the one context default"
	case errors.Is(err, axonclient.ErrContextNotFound):
		return "check --context: the server does not know it"
	case errors.Is(err, job.ErrTargetNotEmpty):
		return "import into a new, empty context; or --resume to continue an interrupted import; or --renumber to append"
	case errors.Is(err, job.ErrSegmentsNotContiguous):
		return "segment files can only hold a whole store from token 0: import such an archive into a running server instead (axarchive import --server … --renumber)"
	case errors.Is(err, writer.ErrSegmentDir):
		return "give import --segments a new or empty directory, or add --resume to continue an import interrupted in it"
	case errors.Is(err, job.ErrNoSpace):
		return "free space on that file system, or write the segment files to another one"
	case errors.Is(err, job.ErrDirInArchive):
		return "write the segment files outside the archive's directory"
	case errors.As(err, new(*job.IncrementalError)):
		var ie *job.IncrementalError
		errors.As(err, &ie)
		return fmt.Sprintf("import the chain in one command, oldest first: axarchive import [flags] ARCHIVE_%.8s… %s (axarchive inspect shows an archive's fingerprint); --renumber would append these events alone at the target's next tokens", ie.Previous.Fingerprint, ie.Dir)
	case errors.Is(err, job.ErrNotContiguous):
		return "import with --renumber: events then take the target's next tokens, and a token map records where each went"
	case errors.Is(err, archive.ErrVerify), errors.Is(err, archive.ErrCorrupt), errors.Is(err, archive.ErrBag):
		return "the archive's files are not what was written; restore it from another copy (sha256sum -c manifest-sha256.txt in the archive lists the damaged files)"
	}
	return ""
}
