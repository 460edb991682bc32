// Package location turns what a user names an archive by, a directory or an s3://bucket/prefix URL,
// into the archive.Storage that holds it, so that every command reads and writes both alike.
package location

import (
	"context"

	"filippo.io/age"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/s3store"
)

// IsRemote reports whether loc names an object store rather than a directory.
func IsRemote(loc string) bool { return s3store.IsURL(loc) }

// Storage returns the storage loc names: an s3store.Store for an s3:// URL (configured from the AWS
// environment and o, nil for none; ctx is the context of its requests), archive.Dir otherwise.
func Storage(ctx context.Context, loc string, o *s3store.Options) (archive.Storage, error) {
	if !s3store.IsURL(loc) {
		return archive.Dir(loc), nil
	}
	return s3store.New(ctx, loc, o)
}

// Open opens the complete archive at loc (archive.Open for a directory, archive.OpenIn for a URL).
func Open(ctx context.Context, loc string, o *s3store.Options) (*archive.Archive, error) {
	if !s3store.IsURL(loc) {
		return archive.Open(loc)
	}
	st, err := Storage(ctx, loc, o)
	if err != nil {
		return nil, err
	}
	return archive.OpenIn(st)
}

// OpenChain opens the archives at locs, oldest first, gives each the identities and checks that they
// form a chain: archive.OpenChain for locations that may be URLs.
func OpenChain(ctx context.Context, locs []string, o *s3store.Options, ids ...age.Identity) (*archive.Chain, error) {
	remote := false
	for _, l := range locs {
		remote = remote || s3store.IsURL(l)
	}
	if !remote {
		return archive.OpenChain(locs, ids...)
	}
	var archives []*archive.Archive
	for _, l := range locs {
		a, err := Open(ctx, l, o)
		if err != nil {
			return nil, err
		}
		a.SetIdentities(ids...)
		archives = append(archives, a)
	}
	c := archive.NewChain(archives...)
	if err := c.Check(); err != nil {
		return nil, err
	}
	return c, nil
}

// Names lists the names of every file in st, sorted: the objects an archive in an object store is made
// of, for retention.
func Names(st archive.Storage) ([]string, error) {
	entries, err := st.List("")
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	return names, nil
}
