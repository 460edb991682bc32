package job

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
)

// The token map of a renumbered import (README: "ARCHIVE_TOKEN TARGET_TOKEN" per line) starts with two
// comment lines; the second records where the target ended before the import, so that a resumed import
// knows where the first run began even if it confirmed nothing.
const (
	tokenMapHeader     = "# axarchive token map: archive-token target-token\n"
	tokenMapHeadPrefix = "# target head before the import: "
)

// mapping is one line of a token map.
type mapping struct{ archive, target int64 }

// tokenMapState is what a token map says about an interrupted renumbered import.
type tokenMapState struct {
	headBefore int64 // the target's head when the import began
	count      int64 // mappings
	last       mapping
	validLen   int64 // bytes up to the end of the last complete line
}

// readTokenMap reads a token map written by a renumbered import, checking that it is one: target tokens
// consecutive from the head before the import, archive tokens increasing. A last line without its line
// break (the import was killed while writing it) is ignored.
// maxTokenMapLine bounds the lines readTokenMap accepts.
const maxTokenMapLine = 4096

func readTokenMap(path string) (*tokenMapState, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read token map: %w", err)
	}
	defer f.Close()
	st := &tokenMapState{headBefore: -2}
	// The map is our own file, but a damaged or foreign one must not make a line of any length: its
	// lines are a few dozen bytes.
	r := bufio.NewReaderSize(f, maxTokenMapLine)
	var off int64
	for lineNo := 1; ; lineNo++ {
		b, err := r.ReadSlice('\n')
		if errors.Is(err, io.EOF) {
			break // an incomplete last line, if any, is dropped
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: token map %s line %d: longer than %d bytes", ErrMismatch, path, lineNo, maxTokenMapLine)
		}
		if err != nil {
			return nil, fmt.Errorf("read token map %s: %w", path, err)
		}
		line := string(b)
		off += int64(len(line))
		bad := func(why string) error {
			return fmt.Errorf("%w: token map %s line %d: %s", ErrMismatch, path, lineNo, why)
		}
		switch {
		case lineNo == 1:
			if line != tokenMapHeader {
				return nil, bad("not an axarchive token map")
			}
		case strings.HasPrefix(line, tokenMapHeadPrefix):
			v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, tokenMapHeadPrefix)), 10, 64)
			if err != nil || lineNo != 2 {
				return nil, bad("malformed head line")
			}
			st.headBefore = v
		case strings.HasPrefix(line, "#"):
		default:
			fields := strings.Fields(line)
			if len(fields) != 2 {
				return nil, bad("want two tokens")
			}
			a, err1 := strconv.ParseInt(fields[0], 10, 64)
			t, err2 := strconv.ParseInt(fields[1], 10, 64)
			if err1 != nil || err2 != nil {
				return nil, bad("want two tokens")
			}
			if st.headBefore < -1 {
				return nil, bad("no head line before the first mapping (written by an older axarchive?)")
			}
			want := st.headBefore + 1
			if st.count > 0 {
				want = st.last.target + 1
				if a <= st.last.archive {
					return nil, bad(fmt.Sprintf("archive token %d after %d", a, st.last.archive))
				}
			}
			if t != want {
				return nil, bad(fmt.Sprintf("target token %d where %d was due", t, want))
			}
			st.last = mapping{a, t}
			st.count++
		}
		st.validLen = off
	}
	if st.headBefore < -1 {
		return nil, fmt.Errorf("%w: token map %s has no head line", ErrMismatch, path)
	}
	return st, nil
}

// TokenMapTargetFirst returns the target token of the first event of the renumbered import whose token
// map is at path (the target's head before that import + 1), for Compare's TargetFirst.
func TokenMapTargetFirst(path string) (int64, error) {
	st, err := readTokenMap(path)
	if err != nil {
		return 0, err
	}
	return st.headBefore + 1, nil
}

// resumeRenumbered finds where an interrupted renumbered import stopped: the token map says which archive
// events were confirmed and where they went; the target's event at the last mapped token must be the
// archive's (identity and bytes). Events the target holds after it that the map does not list (the
// import stopped between a confirmation and writing the map) must be the archive's next events, in
// order; they are added to the map, and the import continues after them. Anything else is a mismatch.
func (im *importer) resumeRenumbered(ctx context.Context, plan *Plan, head int64) error {
	st, err := readTokenMap(im.opts.TokenMap)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: no token map at %s, so there is no renumbered import to resume (start one without --resume, or give --token-map)", ErrMismatch, im.opts.TokenMap)
		}
		return err
	}
	plan.TargetFirst = st.headBefore + 1
	known, from := st.headBefore, plan.FirstToken // last target token accounted for; next archive token
	if st.count > 0 {
		known, from = st.last.target, st.last.archive+1
		if head < known {
			return fmt.Errorf("%w: the target ends at token %d, before token %d where the token map says archive token %d went", ErrMismatch, head, known, st.last.archive)
		}
		want, err := im.archiveEvent(ctx, st.last.archive)
		if err != nil {
			return err
		}
		if want == nil {
			return fmt.Errorf("%w: the token map names archive token %d, which is not in the archive", ErrMismatch, st.last.archive)
		}
		got, err := readTargetEvent(ctx, im.conn, known)
		if err != nil {
			return fmt.Errorf("read the target's event at token %d: %w", known, err)
		}
		if string(got) != string(want) {
			return fmt.Errorf("%w: the target's event at token %d is not archive token %d, as the token map says (%s)", ErrMismatch, known, st.last.archive, describeDifference(want, got))
		}
	} else if head < known {
		return fmt.Errorf("%w: the target ends at token %d, before where the import began (%d)", ErrMismatch, head, known+1)
	}
	if head > known {
		if head-known > MaxTransactionEvents {
			return fmt.Errorf("%w: the target holds %d events after token %d that the token map does not list: more than one transaction, so not only this import wrote them", ErrMismatch, head-known, known)
		}
		if from, err = im.recoverUnmapped(ctx, known, head, from); err != nil {
			return err
		}
	}
	plan.StartAt = from
	return nil
}

// recoverUnmapped compares the target's events known+1..head with the archive's events from token from
// on, one by one, records the mappings in im.recovered, and returns the archive token to continue at.
func (im *importer) recoverUnmapped(ctx context.Context, known, head, from int64) (int64, error) {
	type event struct {
		token int64
		raw   []byte
	}
	var wants []event
	if err := im.eachEvent(ctx, from, func(r *archive.Record) error {
		if int64(len(wants)) == head-known {
			return errStop
		}
		wants = append(wants, event{r.Token, codec.Encode(nil, r)})
		return nil
	}); err != nil && !errors.Is(err, errStop) {
		return 0, err
	}
	i := 0
	err := streamTarget(ctx, im.conn, known+1, head, DefaultCheckRetries, im.opts.Warn, func(token int64, raw []byte) error {
		if i >= len(wants) {
			return fmt.Errorf("%w: the target's event at token %d is after the archive's last event", ErrMismatch, token)
		}
		if string(raw) != string(wants[i].raw) {
			return fmt.Errorf("%w: the target's event at token %d, which the token map does not list, is not archive token %d (%s)", ErrMismatch, token, wants[i].token, describeDifference(wants[i].raw, raw))
		}
		im.recovered = append(im.recovered, mapping{wants[i].token, token})
		i++
		return nil
	})
	if err != nil {
		return 0, err
	}
	im.warn("the target holds %d events after the token map's end (archive tokens %d-%d at target tokens %d-%d): the interrupted run stopped after the server confirmed them; added to the token map",
		len(im.recovered), im.recovered[0].archive, im.recovered[len(im.recovered)-1].archive, known+1, head)
	return im.recovered[len(im.recovered)-1].archive + 1, nil
}

// openTokenMap creates the token map of a renumbered import (never overwriting one: a map that exists
// belongs to an import to resume), or, resuming, opens it for appending after its last complete line,
// and writes the recovered mappings.
func openTokenMap(path string, resume bool, plan *Plan, recovered []mapping) (*tokenMapFile, error) {
	if path == "" {
		return nil, errors.New("--renumber needs a token map file")
	}
	var f *os.File
	if resume {
		st, err := readTokenMap(path)
		if err != nil {
			return nil, err
		}
		if f, err = os.OpenFile(path, os.O_WRONLY, 0); err != nil {
			return nil, fmt.Errorf("open token map: %w", err)
		}
		if err := f.Truncate(st.validLen); err != nil {
			f.Close()
			return nil, fmt.Errorf("open token map: %w", err)
		}
		if _, err := f.Seek(st.validLen, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("open token map: %w", err)
		}
	} else {
		var err error
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("create token map: %s exists: it belongs to an earlier renumbered import (add --resume to continue that one, or move the file away)", path)
			}
			return nil, fmt.Errorf("create token map: %w", err)
		}
		if _, err := fmt.Fprintf(f, "%s%s%d\n", tokenMapHeader, tokenMapHeadPrefix, plan.TargetHead); err != nil {
			f.Close()
			return nil, fmt.Errorf("write token map: %w", err)
		}
	}
	t := &tokenMapFile{f: f, w: bufio.NewWriter(f)}
	for _, m := range recovered {
		if err := t.add([]int64{m.archive}, m.target); err != nil {
			t.close()
			return nil, err
		}
	}
	return t, nil
}
