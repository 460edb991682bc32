package reader

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// Verdict is the one-word answer of CheckSegments: can this copy be trusted as a backup?
type Verdict string

// Verdicts, from best to worst.
const (
	// VerdictIntact: every file reads to its end marker, every checksum matches, and the files follow
	// each other without gaps.
	VerdictIntact Verdict = "intact"
	// VerdictTailCut: intact, except that the end of the newest file is cut short or damaged, as in a
	// copy taken while the server was writing. Everything before the cut is usable.
	VerdictTailCut Verdict = "tail-cut"
	// VerdictDamaged: data is missing or damaged before the end; see the problems.
	VerdictDamaged Verdict = "damaged"
)

func (v Verdict) rank() int {
	switch v {
	case VerdictTailCut:
		return 1
	case VerdictDamaged:
		return 2
	}
	return 0
}

func worse(a, b Verdict) Verdict {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// ChecksumStatus summarises the block checksums of one file.
type ChecksumStatus string

// Checksum statuses.
const (
	// ChecksumsOK: every block up to the end of the data matches its checksum.
	ChecksumsOK ChecksumStatus = "ok"
	// ChecksumsMismatch: a block fails its checksum (the blocks before it match).
	ChecksumsMismatch ChecksumStatus = "mismatch"
	// ChecksumsIncomplete: reading stopped at other damage; the blocks before it match.
	ChecksumsIncomplete ChecksumStatus = "incomplete"
)

// SegmentReport is the result of CheckSegments. It marshals to the JSON of `axarchive segments --json`;
// WriteText renders it for people.
type SegmentReport struct {
	// Verdict is the worse verdict of the two stores.
	Verdict Verdict `json:"verdict"`
	// Summary says the verdict in one sentence.
	Summary string `json:"summary"`
	// Events and Snapshots report each store; nil when that kind was not searched.
	Events    *StoreReport `json:"events,omitempty"`
	Snapshots *StoreReport `json:"snapshots,omitempty"`
	// Notes are OpenSegments' notes: skipped files, old names, a store that does not start at 0.
	Notes []string `json:"notes,omitempty"`
}

// StoreReport is the check of one store: the *.events or the *.snapshots files.
type StoreReport struct {
	Kind SegmentKind `json:"kind"`
	Dir  string      `json:"dir"`
	// Files lists every segment file in order.
	Files []FileReport `json:"files"`
	// Entries counts the events (snapshots) read and verified in all files.
	Entries int64 `json:"entries"`
	// First and Next bound the tokens (store positions) the files claim: the first file's number, and
	// the token after the newest file's last readable entry. With no problems, every token in
	// [First, Next) is present.
	First int64 `json:"first"`
	Next  int64 `json:"next"`
	// Verdict is this store's verdict.
	Verdict Verdict `json:"verdict"`
	// TailCut describes the cut tail of the newest file, if any.
	TailCut *TailCut `json:"tailCut,omitempty"`
	// Problems lists what is missing or damaged, in file order; empty for an intact store.
	Problems []Problem `json:"problems,omitempty"`
	// Warnings are findings that do not make the copy damaged but that a user should hear about.
	Warnings []string `json:"warnings,omitempty"`
}

// FileReport is the check of one segment file.
type FileReport struct {
	SegmentFile
	// Version and Flags are the file header's (flags of version-0 files are junk and ignored).
	Version int    `json:"version"`
	Flags   uint32 `json:"flags"`
	// Blocks and Entries count the blocks and events (snapshots) read and verified.
	Blocks  int64 `json:"blocks"`
	Entries int64 `json:"entries"`
	// Last is the token (store position) of the last entry read; First-1 when there is none.
	Last int64 `json:"last"`
	// Checksums summarises the block checksums.
	Checksums ChecksumStatus `json:"checksums"`
	// End says how the data ends, at EndOffset: the offset of the end marker, of the cut or damaged
	// block or field, or of the end of the file.
	End       EndState `json:"end"`
	EndOffset int64    `json:"endOffset"`
	// Used is the number of bytes holding data: header, verified blocks and end marker. The rest of a
	// pre-allocated file is unused space.
	Used int64 `json:"used"`
	// Error is the damage that stopped the reading, if any.
	Error string `json:"error,omitempty"`
}

// Problem is one thing missing or damaged.
type Problem struct {
	// Cause is a short name: "checksum", "corrupt", "truncated", "gap", "overlap", "unsupported",
	// "too-large" or "io".
	Cause string `json:"cause"`
	// File and Offset locate it (for a gap or an overlap: the file after it, at offset 0).
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	// First is the first token (store position) lost or in doubt; Last is the last, or nil when
	// everything from First on is lost.
	First int64  `json:"first"`
	Last  *int64 `json:"last,omitempty"`
	// Message says it in words.
	Message string `json:"message"`
	// Err is the underlying error, for errors.Is and errors.As.
	Err error `json:"-"`
}

// CheckSegments reads every segment file described by opts, to the end of its data, and reports on each and
// on the set: the backup checker. Unlike the iterators it does not stop at the first damage, so the report
// says everything that is wrong. The error is non-nil only when the check could not run (see OpenSegments);
// damage goes in the report.
func CheckSegments(opts SegmentsOptions) (*SegmentReport, error) {
	segs, err := OpenSegments(opts)
	if err != nil {
		return nil, err
	}
	r := &SegmentReport{Verdict: VerdictIntact, Notes: segs.Notes()}
	sc := &scanner{maxBlock: segs.maxBlock}
	if segs.eventsDir != "" {
		r.Events = checkStore(sc, EventSegments, segs.eventsDir, segs.events)
		r.Verdict = worse(r.Verdict, r.Events.Verdict)
	}
	if segs.snapshotsDir != "" {
		r.Snapshots = checkStore(sc, SnapshotSegments, segs.snapshotsDir, segs.snapshots)
		r.Verdict = worse(r.Verdict, r.Snapshots.Verdict)
	}
	r.Summary = r.summary()
	return r, nil
}

func checkStore(sc *scanner, kind SegmentKind, dir string, files []SegmentFile) *StoreReport {
	st := &StoreReport{Kind: kind, Dir: dir, Files: make([]FileReport, 0, len(files)), Verdict: VerdictIntact}
	if len(files) == 0 {
		return st
	}
	st.First = files[0].First
	for i, file := range files {
		newest := i == len(files)-1
		fr, err := checkFile(sc, file, newest)
		st.Files = append(st.Files, fr)
		st.Entries += fr.Entries
		var next *SegmentFile
		if newest {
			st.Next = fr.Last + 1
		} else {
			next = &files[i+1]
		}
		switch {
		case err != nil:
			st.addProblem(err, fr.Last+1, next)
		case sc.cut != nil:
			st.TailCut = sc.cut
			st.Verdict = worse(st.Verdict, VerdictTailCut)
		case next != nil:
			if err := continuity(file, fr.Last+1, *next); err != nil {
				st.addProblem(err, fr.Last+1, next)
			}
		}
		if newest && err == nil && fr.End == EndClosed {
			st.Warnings = append(st.Warnings, fmt.Sprintf("the newest file %s is closed (end marker -1): Axon Server closes a segment when the next transaction does not fit, and goes on in a new file starting at %s %d, which is not in this copy; anything written there is missing",
				file.Name, kind.unit(), fr.Last+1))
		}
		if !newest && err == nil && fr.End == EndNoMarker {
			st.Warnings = append(st.Warnings, fmt.Sprintf("%s ends at a block boundary without an end marker: the copy was cut or trimmed", file.Name))
		}
	}
	return st
}

// checkFile reads one file to the end of its data. The FileReport is filled in either way.
func checkFile(sc *scanner, file SegmentFile, newest bool) (FileReport, error) {
	fr := FileReport{SegmentFile: file, Last: file.First - 1, Checksums: ChecksumsOK}
	sc.cut = nil
	fail := func(err error) (FileReport, error) {
		fr.End, fr.Checksums, fr.Error = EndCorrupt, ChecksumsIncomplete, err.Error()
		return fr, &SegmentError{File: file.Path, Token: file.First, Kind: file.Kind, Err: err}
	}
	f, err := os.Open(file.Path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	fr.Size = fi.Size()
	err = sc.start(f, fi.Size(), file, newest)
	for err == nil {
		var ok bool
		if ok, err = sc.nextBlock(); !ok {
			break
		}
	}
	fr.Version, fr.Flags = int(sc.version), sc.flags
	fr.Blocks, fr.Entries, fr.Last = sc.blocks, sc.next-file.First, sc.next-1
	fr.End, fr.EndOffset, fr.Used = sc.end, sc.endOff, sc.endOff
	if fr.End == EndActive || fr.End == EndClosed {
		fr.Used += 4
	}
	switch {
	case errors.Is(err, ErrChecksum) || (sc.cut != nil && errors.Is(sc.cut.Err, ErrChecksum)):
		fr.Checksums = ChecksumsMismatch
	case sc.cut != nil && sc.end == EndNoMarker:
		// Every block was checked; only the marker is missing.
	case err != nil || sc.cut != nil:
		fr.Checksums = ChecksumsIncomplete
	}
	if err != nil {
		fr.Error = err.Error()
	}
	return fr, err
}

// addProblem records damage in a file (err is a *SegmentError), or a gap or overlap after it. from is the
// first token not read from the file; next is the following file, if any, which bounds the loss.
func (st *StoreReport) addProblem(err error, from int64, next *SegmentFile) {
	st.Verdict = VerdictDamaged
	p := Problem{Cause: causeOf(err), Message: err.Error(), Err: err, First: from}
	var se *SegmentError
	if errors.As(err, &se) {
		p.File, p.Offset = se.File, se.Offset
	}
	var gap *GapError
	switch {
	case errors.As(err, &gap):
		p.First, p.Last = gap.From, &gap.To
	case errors.Is(err, ErrOverlap):
		// Nothing is lost, but which file holds the true entries is unknown: the overlap is in doubt.
		last := from - 1
		p.First, p.Last = next.First, &last
	case next != nil:
		last := max(next.First-1, from-1) // an overlapping next file leaves no range lost here
		p.Last = &last
	}
	st.Problems = append(st.Problems, p)
}

func causeOf(err error) string {
	switch {
	case errors.Is(err, ErrGap):
		return "gap"
	case errors.Is(err, ErrOverlap):
		return "overlap"
	case errors.Is(err, ErrChecksum):
		return "checksum"
	case errors.Is(err, ErrTruncated):
		return "truncated"
	case errors.Is(err, ErrUnsupported):
		return "unsupported"
	case errors.Is(err, ErrTooLarge):
		return "too-large"
	case errors.Is(err, ErrCorrupt):
		return "corrupt"
	}
	return "io"
}

func (r *SegmentReport) summary() string {
	var parts []string
	for _, st := range []*StoreReport{r.Events, r.Snapshots} {
		if st != nil {
			parts = append(parts, st.summary())
		}
	}
	return string(r.Verdict) + ": " + strings.Join(parts, "; ")
}

func (st *StoreReport) summary() string {
	noun, unit := string(st.Kind), st.Kind.unit()
	if len(st.Files) == 0 {
		return "no *." + noun + " files"
	}
	files := fmt.Sprintf("%d files", len(st.Files))
	if len(st.Files) == 1 {
		files = "1 file"
	}
	if len(st.Problems) > 0 {
		var lost []string
		for _, p := range st.Problems {
			switch {
			case p.Last == nil:
				lost = append(lost, fmt.Sprintf("%ss %d onwards (%s)", unit, p.First, p.Cause))
			case *p.Last >= p.First:
				lost = append(lost, fmt.Sprintf("%ss %d to %d (%s)", unit, p.First, *p.Last, p.Cause))
			default:
				lost = append(lost, fmt.Sprintf("%s at %s %d", p.Cause, unit, p.First))
			}
		}
		if st.TailCut != nil {
			lost = append(lost, fmt.Sprintf("%ss %d onwards (tail cut)", unit, st.TailCut.Token))
		}
		return fmt.Sprintf("%d %s readable in %s; missing or damaged: %s", st.Entries, noun, files, strings.Join(lost, ", "))
	}
	span := fmt.Sprintf("%d %s (%ss %d to %d) in %s", st.Entries, noun, unit, st.First, st.Next-1, files)
	if st.Entries == 0 {
		span = fmt.Sprintf("no %s in %s", noun, files)
	}
	if st.TailCut != nil {
		return fmt.Sprintf("%s, complete up to the cut tail of %s at offset %d", span, filepath.Base(st.TailCut.File), st.TailCut.Offset)
	}
	return span + ", contiguous, every checksum matches"
}

// WriteText renders the report for people: a table per store, then the tail cut, problems and warnings,
// then notes and the verdict. Only errors of w are returned.
func (r *SegmentReport) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, st := range []*StoreReport{r.Events, r.Snapshots} {
		if st == nil {
			continue
		}
		fmt.Fprintf(&b, "%s in %s:\n", st.Kind, st.Dir)
		if len(st.Files) == 0 {
			fmt.Fprintf(&b, "  no *.%s files\n\n", st.Kind)
			continue
		}
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  FILE\tVERSION\tBLOCKS\t%s\t%sS\tCRC\tEND\tUSED/SIZE\n",
			strings.ToUpper(string(st.Kind)), strings.ToUpper(st.Kind.unit()))
		for _, f := range st.Files {
			span := "-"
			if f.Entries > 0 {
				span = fmt.Sprintf("%d-%d", f.First, f.Last)
			}
			ver := fmt.Sprint(f.Version)
			if f.Flags != 0 {
				ver += fmt.Sprintf(" (flags 0x%08x)", f.Flags)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%s\t%s\t%s\t%d/%d\n",
				f.Name, ver, f.Blocks, f.Entries, span, f.Checksums, endText(f), f.Used, f.Size)
		}
		tw.Flush()
		if st.TailCut != nil {
			fmt.Fprintf(&b, "  TAIL CUT: %s\n", st.TailCut)
		}
		for _, p := range st.Problems {
			fmt.Fprintf(&b, "  PROBLEM (%s): %s\n", p.Cause, p.Message)
			switch {
			case p.Last == nil:
				fmt.Fprintf(&b, "    lost: %ss %d onwards\n", st.Kind.unit(), p.First)
			case *p.Last >= p.First && p.Cause == "overlap":
				fmt.Fprintf(&b, "    in doubt: %ss %d to %d\n", st.Kind.unit(), p.First, *p.Last)
			case *p.Last >= p.First:
				fmt.Fprintf(&b, "    lost: %ss %d to %d\n", st.Kind.unit(), p.First, *p.Last)
			}
		}
		for _, wn := range st.Warnings {
			fmt.Fprintf(&b, "  warning: %s\n", wn)
		}
		b.WriteString("\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	fmt.Fprintf(&b, "verdict: %s\n", r.Summary)
	_, err := io.WriteString(w, b.String())
	return err
}

func endText(f FileReport) string {
	switch f.End {
	case EndClosed:
		return fmt.Sprintf("closed (-1 at %d)", f.EndOffset)
	case EndActive:
		return fmt.Sprintf("active (0 at %d)", f.EndOffset)
	case EndNoMarker:
		return fmt.Sprintf("no end marker (EOF at %d)", f.EndOffset)
	case EndTailCut:
		return fmt.Sprintf("truncated tail at %d", f.EndOffset)
	}
	return fmt.Sprintf("corrupt at %d", f.EndOffset)
}
