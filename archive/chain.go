package archive

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/axarchive/axarchive/archive/manifest"

	"filippo.io/age"
)

// Chain is a full archive and the incremental archives that continue it (each exported with the one
// before it as Options.Previous), oldest first: one store, read as one.
type Chain struct {
	archives []*Archive
}

// OpenChain opens the archives in dirs, oldest first, gives each of them the identities (for encrypted
// archives, see Archive.SetIdentities), and checks that they form a chain (see Chain.Check). It returns
// the first error of Open, or Check's.
func OpenChain(dirs []string, ids ...age.Identity) (*Chain, error) {
	c := new(Chain)
	for _, d := range dirs {
		a, err := Open(d)
		if err != nil {
			return nil, err
		}
		a.SetIdentities(ids...)
		c.archives = append(c.archives, a)
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return c, nil
}

// NewChain returns the chain of archives already open, oldest first, without checking it.
func NewChain(archives ...*Archive) *Chain { return &Chain{archives: archives} }

// Archives returns the archives of the chain, oldest first. The caller must not modify the slice.
func (c *Chain) Archives() []*Archive { return c.archives }

// Range returns the token range the chain covers: from the first archive's first token to the last
// one's last token (empty for no archive).
func (c *Chain) Range() manifest.Range {
	if len(c.archives) == 0 {
		return manifest.Range{First: 0, Last: -1}
	}
	return manifest.Range{First: c.archives[0].m.Events.FirstToken, Last: c.archives[len(c.archives)-1].m.Events.LastToken}
}

// Check checks that the archives, in order, form an incremental chain: each one after the first links
// to the one before it (its previous fingerprint and last token) and continues its token range, from the
// same context. It does not verify the archives themselves (see Verify). Every problem is returned,
// joined, each wrapping ErrChain.
func (c *Chain) Check() error {
	var errs []error
	for i := 1; i < len(c.archives); i++ {
		prev, cur := c.archives[i-1], c.archives[i]
		pm, cm := prev.m, cur.m
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%w: %s after %s: "+format, append([]any{ErrChain, cur.dir, prev.dir}, args...)...))
		}
		if cm.Previous == nil {
			fail("not an incremental archive (no previous link)")
			continue
		}
		if cm.Previous.Fingerprint != pm.Fingerprint {
			fail("links to fingerprint %s, but %s has %s", cm.Previous.Fingerprint, prev.dir, pm.Fingerprint)
		}
		if cm.Previous.LastToken != pm.Events.LastToken {
			fail("links to last token %d, but %s ends at %d", cm.Previous.LastToken, prev.dir, pm.Events.LastToken)
		}
		if cm.Events.FirstToken != pm.Events.LastToken+1 {
			fail("starts at token %d, not right after %d", cm.Events.FirstToken, pm.Events.LastToken)
		}
		if cm.Source.Context != pm.Source.Context {
			fail("context %q, but %s has %q", cm.Source.Context, prev.dir, pm.Source.Context)
		}
	}
	return errors.Join(errs...)
}

// Verify verifies every archive of the chain with opts (see Archive.Verify), oldest first, and then
// checks the chain (Check). It returns the report of every archive verified and an error joining the
// archives' errors, each prefixed with the archive's directory, and Check's; when the context is
// cancelled, it stops and returns the context's error.
func (c *Chain) Verify(ctx context.Context, opts VerifyOptions) ([]*VerifyReport, error) {
	var reports []*VerifyReport
	var errs []error
	for _, a := range c.archives {
		rep, err := a.Verify(ctx, opts)
		reports = append(reports, rep)
		if ctx.Err() != nil {
			return reports, ctx.Err()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.dir, err))
		}
	}
	errs = append(errs, c.Check())
	return reports, errors.Join(errs...)
}

// Events returns an iterator over the events of the chain from token from on (0 or math.MinInt64 for
// all), archive after archive, each read as Archive.Events reads it.
func (c *Chain) Events(ctx context.Context, from int64) *Iterator {
	var sources []source
	for _, a := range c.archives {
		if a.m.Events.LastToken >= from {
			sources = append(sources, a.source(manifest.StreamEvents, a.m.Events.SHA256))
		}
	}
	return newIterator(ctx, manifest.StreamEvents, from, sources...)
}

// Snapshots returns an iterator over the snapshots of the chain, archive after archive, each in
// position order (positions start again in each archive).
func (c *Chain) Snapshots(ctx context.Context) *Iterator {
	var sources []source
	for _, a := range c.archives {
		sources = append(sources, a.source(manifest.StreamSnapshots, a.m.Snapshots.SHA256))
	}
	return newIterator(ctx, manifest.StreamSnapshots, math.MinInt64, sources...)
}
