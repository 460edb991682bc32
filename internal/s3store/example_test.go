package s3store_test

import (
	"context"
	"log"
	"time"

	"github.com/axarchive/axarchive/internal/s3store"
)

// An export into a bucket with Object Lock: refuse early when retention cannot be had, write the files,
// and retain them once the archive is complete.
func Example() {
	ctx := context.Background()
	// Credentials, region and endpoint come from the AWS environment (AWS_PROFILE, AWS_ENDPOINT_URL, …).
	store, err := s3store.New(ctx, "s3://archives/axon/2026-12", &s3store.Options{PathStyle: true})
	if err != nil {
		log.Fatal(err)
	}
	retention := s3store.Retention{Mode: s3store.Compliance, Until: time.Now().AddDate(7, 0, 0)}
	if err := store.CheckRetention(ctx, retention); err != nil {
		log.Fatal(err) // before anything is written
	}
	if _, err := store.AbortUploads(ctx); err != nil { // a resumed export: drop a crashed run's uploads
		log.Fatal(err)
	}
	f, err := store.Create("bagit.txt")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := f.Write([]byte("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")); err != nil {
		f.Abort()
		log.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		f.Abort()
		log.Fatal(err)
	}
	// ... the rest of the archive, then, once it is complete:
	if err := store.Retain(ctx, []string{"bagit.txt"}, retention); err != nil {
		log.Fatal(err)
	}
}
