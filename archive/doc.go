// Package archive implements the axarchive format, versions 1 and 2 (SPEC.md): a vendor-neutral archive of
// an Axon Server event store that an auditor can open in ten years with zstd, jq and sha256sum, and that
// proves nothing in it changed.
//
// An archive is a directory that is a BagIt 1.0 bag (RFC 8493):
//
//	bagit.txt  bag-info.txt  manifest-sha256.txt  tagmanifest-sha256.txt
//	data/manifest.json                            what the archive holds and how to check it
//	data/events/<first token, 20 digits>.jsonl.zst      event records, in token order
//	data/snapshots/<first position, 20 digits>.jsonl.zst snapshot records, in position order
//	data/transactions/<first token, 20 digits>.jsonl.zst version 2: the source's transactions
//
// Each chunk is one zstd frame of JSON Lines, one canonical record per line (see Record and
// AppendEventJSON). The manifest gives every chunk's record count, first and last token, sizes and
// SHA-256 digests, and a content fingerprint of all records (see Fingerprint). This package reads and
// writes no gRPC, protobuf or command-line concerns: converting Axon Server events to Records is the job
// of its callers, and so is advice to a user. The wire details below the format (the zstd frame checks,
// the JSON line scanner, the BagIt tag files) are in archive/internal.
//
// # Storage
//
// Every file an archive reads or writes goes through a Storage: Dir(path) is a local directory (what
// Create, Resume, Open and OpenChain use), and CreateIn, ResumeIn and OpenIn take any other, such as an
// object store prefix (SPEC.md 3.5). A Storage commits each file whole (Dir: temporary name, fsync,
// rename, directory fsync; an object store: the upload's completion), so the protocol below is the same
// for both.
//
// # Writing
//
// Create starts an archive; the Writer takes events in token order (WriteEvent, or WriteEventLine for
// lines already encoded on other cores), then FinishEvents, then snapshots in position order
// (WriteSnapshot), and Close commits the archive. Chunks are written to temporary names, fsynced and
// renamed, and a journal (journal.json) records every committed chunk; data/manifest.json and the BagIt
// files are written last and the journal removed, so a directory with a journal is an incomplete
// archive, and a manifest never describes data that is not there. The same records and options give the
// same chunk contents and fingerprint, and with the same SOURCE_DATE_EPOCH the same manifest.
//
// # Resuming
//
// After an interruption (Writer.Suspend, a crash, a lost connection), Resume reopens the directory: it
// re-hashes the committed chunks, removes what the journal does not cover, and continues at
// Writer.NextToken (events) or after Writer.SnapshotsCommitted (snapshots). The archive it completes is
// byte for byte the one an uninterrupted run would have written.
//
// # Reading
//
// Open checks the manifest (never trusting it: chunk paths must be chunk names under data/, counts and
// ranges must agree) and returns an Archive; Archive.Events and Archive.Snapshots iterate over the
// records. An Iterator never ends cleanly on bytes it has not checked: a chunk's end is reported only
// after its sizes, digests, record count, tokens and zstd checksum matched the manifest.
//
// # Verification
//
// Archive.Verify checks everything: the BagIt files, that the files present are exactly those listed,
// every digest and size, the zstd frames, and (unless quick) every record against the JSON Schema and
// the canonical encoding, token order and continuity, counts, and the fingerprint. It reports every
// problem, each an *Error naming the file, line and token.
//
// # Chains
//
// An incremental archive continues the one before it (Options.Previous). OpenChain opens a full archive
// and its incrementals, oldest first, and checks that each follows the one before; a Chain verifies them
// all and iterates over their events and snapshots as over one archive's.
//
// # Compatibility
//
// Archives carry their format version in data/manifest.json. Open accepts versions MinVersion to
// MaxVersion and refuses others with ErrVersion. Within a version, readers ignore manifest members they
// do not know, and writers never change the meaning of existing ones; anything an older reader would
// misread takes a new version: version 2 adds the transactions stream (Options.Transactions,
// Writer.EndTransaction, Archive.TxCursor), and writers write it only for archives that record
// transactions, so every other archive stays version 1. The golden archives in testdata/archives/v1 and
// v2 are frozen once released.
// The compressed bytes of a chunk may differ between versions of the zstd library; the records, the
// fingerprint and every check do not.
package archive
