package archive

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/axarchive/axarchive/internal/crashpoint"
)

// Dir returns the Storage of the local directory path: what Create, Resume and Open use. A file is
// written to a temporary name beside its final one (name + ".tmp"), fsynced, renamed and its directory
// fsynced; Open and Stat never follow a symbolic link, on the way or at the end, and Open refuses
// anything that is not a regular file. List shows directories, links and other non-regular files as
// they are (Mode), so that Verify and Resume can refuse them.
func Dir(path string) Storage { return &dirStorage{root: path, sync: true} }

type dirStorage struct {
	root string
	sync bool // false: no fsync (Options.NoSync)
}

func (d *dirStorage) String() string { return d.root }

func (d *dirStorage) path(name string) string { return filepath.Join(d.root, filepath.FromSlash(name)) }

// Open opens a regular file, no symbolic link on the way; the file has a Size method.
func (d *dirStorage) Open(name string) (io.ReadCloser, error) {
	f, fi, err := openRegular(d.root, name)
	if err != nil {
		return nil, err
	}
	return &dirFile{File: f, size: fi.Size()}, nil
}

// dirFile is an open file of a dirStorage, with the size it had when opened.
type dirFile struct {
	*os.File
	size int64
}

func (f *dirFile) Size() int64 { return f.size }

func (d *dirStorage) Stat(name string) (StorageEntry, error) {
	fi, err := os.Lstat(d.path(name))
	if err != nil {
		return StorageEntry{}, err
	}
	return entryOf(name, fi), nil
}

func entryOf(name string, fi fs.FileInfo) StorageEntry {
	e := StorageEntry{Name: name, Mode: fi.Mode().Type()}
	if fi.Mode().IsRegular() {
		e.Size = fi.Size()
	}
	return e
}

// List walks the directory without following links below it (the directory itself may be reached
// through one, as a path given by a user may). A directory that does not exist lists nothing.
func (d *dirStorage) List(prefix string) ([]StorageEntry, error) {
	var out []StorageEntry
	root := d.root + string(filepath.Separator) // the trailing separator follows a link to the directory
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipAll
			}
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if de.IsDir() && !strings.HasPrefix(prefix, name+"/") && !strings.HasPrefix(name, prefix) {
			return filepath.SkipDir
		}
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while listed
		} else if err != nil {
			return err
		}
		out = append(out, entryOf(name, fi))
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b StorageEntry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (d *dirStorage) Remove(name string) error {
	if err := os.Remove(d.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Create writes name + ".tmp"; Commit fsyncs it, renames it to name and fsyncs the directory. A leftover
// temporary file (or a link planted in its place) is removed, never written through; a directory in its
// place is an error.
func (d *dirStorage) Create(name string) (NewFile, error) {
	final := d.path(name)
	tmp := final + tmpSuffix
	if fi, err := os.Lstat(tmp); err == nil && !fi.IsDir() {
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &dirNewFile{f: f, name: name, tmp: tmp, final: final, sync: d.sync}, nil
}

type dirNewFile struct {
	f                *os.File
	name, tmp, final string
	sync             bool
	done             bool
}

func (n *dirNewFile) Write(p []byte) (int, error) { return n.f.Write(p) }

func (n *dirNewFile) Commit() error {
	if n.done {
		return fmt.Errorf("commit %s: already committed or aborted", n.name)
	}
	if n.sync {
		if err := n.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", n.name, err)
		}
	}
	err := n.f.Close()
	n.f = nil
	if err != nil {
		return fmt.Errorf("write %s: %w", n.name, err)
	}
	if err := os.Rename(n.tmp, n.final); err != nil {
		return fmt.Errorf("write %s: %w", n.name, err)
	}
	n.done = true
	if n.sync {
		return syncDir(filepath.Dir(n.final))
	}
	return nil
}

func (n *dirNewFile) Abort() error {
	if n.done {
		return nil
	}
	n.done = true
	if n.f != nil {
		n.f.Close()
		n.f = nil
	}
	if err := os.Remove(n.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// localDir returns the directory of st when it is one (nil otherwise): directories are made and
// fsynced, and checked to be directories, only there; an object store has none.
func localDir(st Storage) *dirStorage {
	d, _ := st.(*dirStorage)
	return d
}

// withSync returns st writing with or without fsync (only a directory has a choice).
func withSync(st Storage, sync bool) Storage {
	if d := localDir(st); d != nil && d.sync != sync {
		return &dirStorage{root: d.root, sync: sync}
	}
	return st
}

// openSized opens a file of st and returns its size.
func openSized(st Storage, name string) (io.ReadCloser, int64, error) {
	r, err := st.Open(name)
	if err != nil {
		return nil, 0, err
	}
	if s, ok := r.(interface{ Size() int64 }); ok {
		return r, s.Size(), nil
	}
	e, err := st.Stat(name)
	if err != nil {
		r.Close()
		return nil, 0, err
	}
	return r, e.Size, nil
}

// writeFile writes a small file whole to st: a reader sees the old content or the new, never a mix.
func writeFile(st Storage, rel string, data []byte) error {
	f, err := st.Create(rel)
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", rel, err)
	}
	crashpoint.Hit(rel) // faulttest: the file is written, not yet committed (renamed)
	if err := f.Commit(); err != nil {
		f.Abort()
		return err
	}
	return nil
}
