// Package s3store keeps an archive in an S3 bucket: Store is an archive.Storage over one bucket and key
// prefix (s3://bucket/prefix), holding the same BagIt layout as a directory, one object per file, so that
// `aws s3 sync` and `sha256sum -c` work on it as on a local bag.
//
// # Configuration
//
// New loads the AWS configuration the way the AWS CLI and SDKs do (aws-sdk-go-v2's
// config.LoadDefaultConfig): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
// AWS_PROFILE, the shared config and credentials files, SSO and role profiles, and AWS_ENDPOINT_URL (or
// AWS_ENDPOINT_URL_S3, or a profile's endpoint_url) for S3-compatible servers. Options can name an
// endpoint, a profile and a region, and turn on path-style addressing. No secret is ever part of a
// Store's String, of an error, or of a URL: credentials in an s3:// or endpoint URL are refused.
//
// # Context
//
// archive.Storage's methods take no context, so a Store keeps the one given to New and makes every
// request of those methods with it: cancelling it stops the uploads and downloads in flight. The
// methods that are the Store's own (ObjectLock, CheckRetention, Retain, RetentionOf, Retentions,
// AbortUploads) take a context each.
//
// # Writing
//
// Create returns a file that is a PutObject at Commit while it holds at most one part, and a multipart
// upload beyond: parts go up while the caller writes, Options.Concurrency at a time, so memory stays
// below PartSize × (Concurrency+1) whatever the file's size, and nothing is staged on disk. Every
// request is retried on transient errors (a cut connection, a server restarting, 5xx answers) with
// exponential back-off; a part's body is in memory, so a retry sends it again whole. Each object and part
// carries a CRC32C checksum the server checks before storing it. Nothing shows under a name until Commit
// has returned nil; Abort aborts the multipart upload.
//
// # Resuming
//
// A writer killed before Commit or Abort leaves an unfinished multipart upload, invisible to List but
// kept (and billed) by the server. A resumed export calls AbortUploads before it writes, which aborts
// every unfinished upload under the prefix: the journal tells the export which files are committed, and
// it writes the others again, so no upload is ever completed from a previous run's parts.
//
// # Object Lock
//
// CheckRetention refuses, before anything is written, an export that asks for retention into a bucket
// without Object Lock. Retention is put on the objects only once the archive is complete, by Retain: an
// export replaces its journal many times and a resumed one removes what an interrupted run left
// uncommitted, neither of which a retained object allows. Until Retain has run the archive's objects are
// unprotected, and a re-run of Retain (with the same date) finishes an interrupted one. A bucket whose
// Object Lock has a default retention rule retains every version as it is written, including each
// journal version; ObjectLock reports such a rule so that a caller can warn. RetentionOf reads an object's
// retention and legal hold, and Retentions those of a whole archive, naming the objects that are
// unprotected or expire before the rest, for verify and inspect.
//
// # Names
//
// File names are the archive.Storage names: relative, slash-separated, without "." or ".." elements;
// s3store also refuses backslashes and control characters. Keys listed back by the server are never
// trusted: one outside the prefix, or whose rest is not such a name, fails the listing with ErrBadKey.
package s3store
