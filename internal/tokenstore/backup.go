package tokenstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/axarchive/axarchive/internal/smallfile"
)

// ErrBackup: a backup file is not one tokens rewrite wrote, or is damaged.
var ErrBackup = errors.New("not a valid tokens backup")

const (
	backupFormat  = "axarchive tokens backup"
	backupVersion = 1
	// maxBackupSize bounds what ReadBackup reads: a row is a few hundred bytes.
	maxBackupSize = 256 << 20
)

// Backup is the rows a rewrite changed, as they were.
type Backup struct {
	Format  string      `json:"format"`
	Version int         `json:"version"`
	Created string      `json:"created"`
	Table   string      `json:"table"`
	Rows    []backupRow `json:"rows"`
}

type backupRow struct {
	Processor string  `json:"processor"`
	Segment   int32   `json:"segment"`
	Mask      *int32  `json:"mask"`
	TokenType *string `json:"tokenType"`
	Token     *[]byte `json:"token"` // base64; null for a NULL token
	Timestamp *string `json:"timestamp"`
	Owner     *string `json:"owner"`
}

// writeBackup writes rows to path, which must not exist, and syncs it: it is on disk before the
// transaction changes anything.
func writeBackup(path, table string, rows []Row, now time.Time) error {
	b := Backup{Format: backupFormat, Version: backupVersion, Created: Timestamp(now), Table: table}
	for _, r := range rows {
		br := backupRow{Processor: r.Processor, Segment: r.Segment, Mask: r.Mask, TokenType: r.TokenType, Timestamp: r.Timestamp, Owner: r.Owner}
		if r.Token != nil {
			t := r.Token
			br.Token = &t
		}
		b.Rows = append(b.Rows, br)
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write the backup: %w", err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write the backup %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write the backup %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write the backup %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// ReadBackup reads a backup file.
func ReadBackup(path string) (*Backup, []Row, error) {
	data, err := smallfile.Read(path, maxBackupSize)
	var tl *smallfile.TooLargeError
	switch {
	case errors.As(err, &tl):
		return nil, nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBackup, path, maxBackupSize)
	case err != nil:
		return nil, nil, fmt.Errorf("read the backup: %w", err)
	}
	return parseBackup(path, data)
}

func parseBackup(path string, data []byte) (*Backup, []Row, error) {
	if len(data) > maxBackupSize {
		return nil, nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBackup, path, maxBackupSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Backup
	if err := dec.Decode(&b); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrBackup, path, err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("%w: %s: data after the backup", ErrBackup, path)
	}
	if b.Format != backupFormat {
		return nil, nil, fmt.Errorf("%w: %s: format %q, want %q", ErrBackup, path, b.Format, backupFormat)
	}
	if b.Version != backupVersion {
		return nil, nil, fmt.Errorf("%w: %s: version %d; this axarchive reads version %d", ErrBackup, path, b.Version, backupVersion)
	}
	seen := map[string]bool{}
	var rows []Row
	for i, br := range b.Rows {
		r := Row{Processor: br.Processor, Segment: br.Segment, Mask: br.Mask, TokenType: br.TokenType, Timestamp: br.Timestamp, Owner: br.Owner}
		if br.Token != nil {
			r.Token = *br.Token
		}
		switch {
		case r.Processor == "" || r.Processor == ConfigProcessor:
			return nil, nil, fmt.Errorf("%w: %s: row %d: processor %q", ErrBackup, path, i+1, r.Processor)
		case seen[r.String()]:
			return nil, nil, fmt.Errorf("%w: %s: row %d: %s twice", ErrBackup, path, i+1, r)
		case (r.Token == nil) != (r.TokenType == nil):
			return nil, nil, fmt.Errorf("%w: %s: row %d: %s: a token without a type or a type without a token", ErrBackup, path, i+1, r)
		}
		seen[r.String()] = true
		rows = append(rows, r)
	}
	return &b, rows, nil
}

// Result is what a rewrite or restore did (or, dry, would do).
type Result struct {
	Changes []Change
	Backup  string // the backup file written; "" when nothing changed or dry
}

// Rewrite plans a rewrite with the rows as they are, locked, in one transaction and, unless dry, writes
// the old rows to backupPath and then applies the changes in that transaction. mode is made from the
// rows (a token map is read for their positions only).
func Rewrite(ctx context.Context, s Store, mode func([]Row) (Mode, error), opts Options, backupPath string, dry bool) (*Result, error) {
	tx, err := s.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Rows(ctx)
	if err != nil {
		return nil, err
	}
	m, err := mode(rows)
	if err != nil {
		return nil, err
	}
	changes, err := Plan(rows, m, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Table(), err)
	}
	res := &Result{Changes: changes}
	if dry || len(changes) == 0 {
		return res, nil
	}
	old := make([]Row, len(changes))
	for i, c := range changes {
		old[i] = c.Old
	}
	if err := writeBackup(backupPath, s.Describe(), old, opts.Now); err != nil {
		return nil, err
	}
	for _, c := range changes {
		if err := tx.Update(ctx, c.New); err != nil {
			return nil, fmt.Errorf("%w (nothing was changed; the backup %s holds the rows as they are)", err, backupPath)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("%w (nothing was changed, or the commit's outcome is unknown: tokens list shows which; the backup %s holds the old rows)", err, backupPath)
	}
	res.Backup = backupPath
	return res, nil
}

// Positions returns every position of rows that can be read, for ReadTokenMap.
func Positions(rows []Row) []int64 {
	var out []int64
	for _, r := range rows {
		if r.Processor == ConfigProcessor {
			continue
		}
		if t, err := r.Decode(); err == nil && t != nil {
			out = append(out, t.Positions()...)
		}
	}
	return out
}

// Restore puts the rows of a backup back in one transaction: each row's token, type, timestamp and
// owner as they were; a row deleted since (a merged segment) is inserted again. It refuses while a
// processor it touches is claimed, unless Force.
func Restore(ctx context.Context, s Store, backup []Row, opts Options) (*Result, error) {
	tx, err := s.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Rows(ctx)
	if err != nil {
		return nil, err
	}
	current := map[string]Row{}
	for _, r := range rows {
		current[r.String()] = r
	}
	touched := map[string]bool{}
	for _, b := range backup {
		touched[b.Processor] = true
	}
	if !opts.Force {
		var claimed []string
		for _, r := range rows {
			if touched[r.Processor] && r.Claimed(opts.Now, opts.ClaimTimeout) {
				claimed = append(claimed, fmt.Sprintf("%s (owner %s, last stored %s)", r, deref(r.Owner), deref(r.Timestamp)))
			}
		}
		if len(claimed) > 0 {
			return nil, fmt.Errorf("%s: %w: %s", s.Table(), ErrClaimed, joinStrings(claimed))
		}
	}
	res := &Result{}
	for _, b := range backup {
		cur, exists := current[b.String()]
		show := func(r Row) string {
			t, err := r.Decode()
			if err != nil {
				return "(unreadable)"
			}
			if t == nil {
				return "null"
			}
			return t.Root.String()
		}
		if exists {
			err = tx.Update(ctx, b)
			res.Changes = append(res.Changes, Change{Old: cur, New: b, OldShow: show(cur), NewShow: show(b)})
		} else {
			err = tx.Insert(ctx, b)
			res.Changes = append(res.Changes, Change{New: b, OldShow: "(no row)", NewShow: show(b)})
		}
		if err != nil {
			return nil, fmt.Errorf("%w (nothing was changed)", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

func joinStrings(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "; "
		}
		out += x
	}
	return out
}
