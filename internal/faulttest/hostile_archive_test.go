package faulttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axontest"
)

// hostile is a copy of a good archive being damaged, next to a directory outside it.
type hostile struct {
	t       *testing.T
	dir     string // the archive
	outside string // a directory beside it, holding victim files that nothing may touch
}

func (h *hostile) path(rel string) string { return filepath.Join(h.dir, filepath.FromSlash(rel)) }

// chunks returns the archive paths (data/...) of the chunks of a stream, in manifest order.
func (h *hostile) chunks(stream string) []string {
	var out []string
	for _, c := range h.manifest()["chunks"].([]any) {
		c := c.(map[string]any)
		if c["stream"] == stream {
			out = append(out, "data/"+c["path"].(string))
		}
	}
	require.NotEmpty(h.t, out, "chunks of %s", stream)
	return out
}

// first, middle and last pick a chunk of a stream.
func (h *hostile) first(stream string) string { return h.chunks(stream)[0] }
func (h *hostile) middle(stream string) string {
	c := h.chunks(stream)
	return c[len(c)/2]
}
func (h *hostile) last(stream string) string {
	c := h.chunks(stream)
	return c[len(c)-1]
}

func (h *hostile) read(rel string) []byte {
	b, err := os.ReadFile(h.path(rel))
	require.NoError(h.t, err)
	return b
}

func (h *hostile) write(rel string, b []byte) {
	require.NoError(h.t, os.WriteFile(h.path(rel), b, 0o644))
}

func (h *hostile) remove(rel string) { require.NoError(h.t, os.Remove(h.path(rel))) }

// flip flips the lowest bit of the byte at the middle of a file.
func (h *hostile) flip(rel string) {
	b := h.read(rel)
	b[len(b)/2] ^= 1
	h.write(rel, b)
}

func (h *hostile) truncate(rel string) {
	b := h.read(rel)
	h.write(rel, b[:len(b)/2])
}

// manifest returns data/manifest.json parsed, numbers kept exact.
func (h *hostile) manifest() map[string]any {
	dec := json.NewDecoder(bytes.NewReader(h.read("data/manifest.json")))
	dec.UseNumber()
	var m map[string]any
	require.NoError(h.t, dec.Decode(&m))
	return m
}

func (h *hostile) setManifest(m map[string]any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	require.NoError(h.t, enc.Encode(m))
	h.write("data/manifest.json", b.Bytes())
}

// editManifest changes the manifest and reseals the bag, so that only the manifest's content is wrong.
func (h *hostile) editManifest(edit func(m map[string]any)) {
	m := h.manifest()
	edit(m)
	h.setManifest(m)
	h.reseal()
}

// entry returns the manifest's entry of a chunk (path data/...).
func entry(m map[string]any, rel string) map[string]any {
	for _, c := range m["chunks"].([]any) {
		c := c.(map[string]any)
		if "data/"+c["path"].(string) == rel {
			return c
		}
	}
	panic("no chunk " + rel)
}

func num(v any) int64 {
	n, err := v.(json.Number).Int64()
	if err != nil {
		panic(err)
	}
	return n
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// lines returns a chunk's decompressed JSON Lines, each with its LF.
func (h *hostile) lines(rel string) [][]byte {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxWindow(8<<20))
	require.NoError(h.t, err)
	defer dec.Close()
	raw, err := dec.DecodeAll(h.read(rel), nil)
	require.NoError(h.t, err)
	lines := bytes.SplitAfter(raw, []byte("\n"))
	return lines[:len(lines)-1] // the empty string after the last LF
}

// setChunk replaces a chunk file's bytes and updates its manifest entry (size and SHA-256, and, when raw is
// not nil, the content's size and digest and the record count) and the bag, as a careful forger would.
func (h *hostile) setChunk(rel string, file, raw []byte) {
	h.write(rel, file)
	m := h.manifest()
	e := entry(m, rel)
	e["size"] = json.Number(fmt.Sprint(len(file)))
	e["sha256"] = hexSHA(file)
	if raw != nil {
		e["rawSize"] = json.Number(fmt.Sprint(len(raw)))
		e["rawSha256"] = hexSHA(raw)
	}
	h.setManifest(m)
	h.reseal()
}

// setLines rewrites a chunk with other JSON Lines (one valid zstd frame, as the writer makes it).
func (h *hostile) setLines(rel string, lines [][]byte) {
	raw := bytes.Join(lines, nil)
	h.setChunk(rel, compress(h.t, raw), raw)
}

func compress(t testing.TB, raw []byte) []byte {
	var b bytes.Buffer
	enc, err := zstd.NewWriter(&b, zstd.WithEncoderCRC(true), zstd.WithWindowSize(1<<20), zstd.WithEncoderConcurrency(1))
	require.NoError(t, err)
	_, err = enc.Write(raw)
	require.NoError(t, err)
	require.NoError(t, enc.Close())
	return b.Bytes()
}

// reseal rewrites the BagIt files to match the payload as it is: manifest-sha256.txt from data/manifest.json
// and the chunk files the manifest lists, Payload-Oxum, and tagmanifest-sha256.txt.
func (h *hostile) reseal() {
	paths := []string{"data/manifest.json"}
	for _, c := range h.manifest()["chunks"].([]any) {
		paths = append(paths, "data/"+c.(map[string]any)["path"].(string))
	}
	slices.Sort(paths)
	var payload strings.Builder
	var octets int64
	files := 0
	for _, p := range paths {
		fi, err := os.Lstat(h.path(p))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		b := h.read(p)
		fmt.Fprintf(&payload, "%s  %s\n", hexSHA(b), p)
		octets += int64(len(b))
		files++
	}
	h.write("manifest-sha256.txt", []byte(payload.String()))
	info := regexp.MustCompile(`(?m)^Payload-Oxum: .*$`).ReplaceAllString(string(h.read("bag-info.txt")), fmt.Sprintf("Payload-Oxum: %d.%d", octets, files))
	h.write("bag-info.txt", []byte(info))
	h.resealTags()
}

func (h *hostile) resealTags() {
	var tags strings.Builder
	for _, p := range []string{"bag-info.txt", "bagit.txt", "manifest-sha256.txt"} {
		if b, err := os.ReadFile(h.path(p)); err == nil {
			fmt.Fprintf(&tags, "%s  %s\n", hexSHA(b), p)
		}
	}
	h.write("tagmanifest-sha256.txt", []byte(tags.String()))
}

// zstdFrame builds a zstd frame by hand: header with the given window log and checksum flag, then blocks
// (each a raw or RLE block), then a content checksum field of zeros when flagged (a decoder must have
// stopped before it for the bombs; the other cases fail on their structure first).
type zblock struct {
	rle  bool
	data []byte // raw content, or the one byte an RLE block repeats
	n    int    // RLE repetitions
}

func zstdFrame(windowLog int, checksum bool, blocks []zblock) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd}
	fhd := byte(0)
	if checksum {
		fhd |= 0x04
	}
	b = append(b, fhd, byte(windowLog-10)<<3)
	for i, bl := range blocks {
		last := 0
		if i == len(blocks)-1 {
			last = 1
		}
		typ, size := 0, len(bl.data)
		if bl.rle {
			typ, size = 1, bl.n
		}
		hdr := uint32(size)<<3 | uint32(typ)<<1 | uint32(last)
		b = append(b, byte(hdr), byte(hdr>>8), byte(hdr>>16))
		b = append(b, bl.data...)
	}
	if checksum {
		b = binary.LittleEndian.AppendUint32(b, 0)
	}
	return b
}

// bomb is a frame of n RLE blocks of 128 KiB of 'a' each: 32 KiB on disk for 4 GiB of output with n=32768.
func bomb(n int) []byte {
	blocks := make([]zblock, n)
	for i := range blocks {
		blocks[i] = zblock{rle: true, data: []byte{'a'}, n: 128 << 10}
	}
	return zstdFrame(20, true, blocks)
}

// hostileCase is one kind of damage at one position.
type hostileCase struct {
	name   string
	damage func(h *hostile)
	// verify must match the stderr of `axarchive verify` (exit 3); import that of `axarchive import`.
	verify string
	// importErr, if not empty, is what import must say instead of verify's specific message (for
	// problems import finds before it verifies, such as an unreadable manifest).
	importErr string
	heavy     bool // only in the full set
	// quick: `verify --quick` must refuse it too, with the same message. cat: "events" or "snapshots":
	// `cat` (`cat --snapshots`) must refuse it too (exit 3, the same message).
	quick bool
	cat   string
	// maxAlloc, if set, bounds the bytes that opening and verifying the archive allocates (measured in
	// process: a child's peak RSS includes the test process's): the damage must not make the reader
	// allocate what the file claims or produces.
	maxAlloc int64
}

const digestMismatch = `: archive data does not match its manifest: sha256 is [0-9a-f]{64}, the manifest says [0-9a-f]{64}`

func hostileCases() []hostileCase {
	// line rewrites a chunk with fn applied to its lines.
	line := func(stream string, pick func(h *hostile, stream string) string, fn func(lines [][]byte) [][]byte) func(h *hostile) {
		return func(h *hostile) {
			rel := pick(h, stream)
			h.setLines(rel, fn(h.lines(rel)))
		}
	}
	first := (*hostile).first
	middle := (*hostile).middle
	last := (*hostile).last
	editLine := func(i int, fn func(l []byte) []byte) func([][]byte) [][]byte {
		return func(lines [][]byte) [][]byte {
			lines[i] = fn(slices.Clone(lines[i]))
			return lines
		}
	}
	return []hostileCase{
		// Flipped bits and truncation: the digests in the manifest catch them.
		{name: "events-first-flipped-bit", damage: func(h *hostile) { h.flip(h.first("events")) }, verify: digestMismatch},
		{name: "events-middle-flipped-bit", damage: func(h *hostile) { h.flip(h.middle("events")) }, verify: digestMismatch},
		{name: "events-last-flipped-bit", damage: func(h *hostile) { h.flip(h.last("events")) }, verify: digestMismatch},
		{name: "snapshots-first-flipped-bit", damage: func(h *hostile) { h.flip(h.first("snapshots")) }, verify: digestMismatch},
		{name: "events-first-truncated", damage: func(h *hostile) { h.truncate(h.first("events")) }, verify: `data/(events|snapshots)/\d{20}\.jsonl\.zst: archive data does not match its manifest: size is \d+ bytes, the manifest says \d+`},
		{name: "events-last-truncated", damage: func(h *hostile) { h.truncate(h.last("events")) }, verify: `data/(events|snapshots)/\d{20}\.jsonl\.zst: archive data does not match its manifest: size is \d+ bytes, the manifest says \d+`},
		{name: "snapshots-last-truncated", damage: func(h *hostile) { h.truncate(h.last("snapshots")) }, verify: `data/(events|snapshots)/\d{20}\.jsonl\.zst: archive data does not match its manifest: size is \d+ bytes, the manifest says \d+`},
		// Missing and extra files.
		{name: "events-middle-missing", damage: func(h *hostile) { h.remove(h.middle("events")) }, verify: `data/events/\d{20}\.jsonl\.zst: archive data does not match its manifest: missing`},
		{name: "snapshots-first-missing", damage: func(h *hostile) { h.remove(h.first("snapshots")) }, verify: `data/snapshots/\d{20}\.jsonl\.zst: archive data does not match its manifest: missing`},
		{name: "events-unlisted-file", damage: func(h *hostile) { h.write("data/events/99999999999999999999.jsonl.zst", h.read(h.first("events"))) },
			verify: `data/events/99999999999999999999\.jsonl\.zst: archive data does not match its manifest: file not listed in data/manifest\.json`},
		{name: "root-unlisted-file", damage: func(h *hostile) { h.write("notes.txt", []byte("hello\n")) }, verify: `notes\.txt: archive data does not match its manifest: unexpected file \(not part of the archive\)`},
		{name: "data-leftover-tmp", damage: func(h *hostile) { h.write("data/manifest.json.tmp", []byte("{}")) }, verify: `data/manifest\.json\.tmp: archive data does not match its manifest: file not listed in data/manifest\.json`},
		{name: "journal-present", damage: func(h *hostile) { h.write("journal.json", []byte("{}")) }, verify: `incomplete archive`},
		// Symbolic links and special files: never followed, never opened, never waited on.
		{name: "events-middle-symlink-outside", damage: func(h *hostile) {
			rel := h.middle("events")
			victim := filepath.Join(h.outside, "victim.jsonl.zst")
			require.NoError(h.t, os.WriteFile(victim, h.read(rel), 0o644))
			h.remove(rel)
			require.NoError(h.t, os.Symlink(victim, h.path(rel)))
		}, verify: `data/events/\d{20}\.jsonl\.zst: archive data does not match its manifest: is a symbolic link`},
		{name: "events-dir-symlink-outside", damage: func(h *hostile) {
			require.NoError(h.t, os.Rename(h.path("data/events"), filepath.Join(h.outside, "events")))
			require.NoError(h.t, os.Symlink(filepath.Join(h.outside, "events"), h.path("data/events")))
		}, verify: `data/events: archive data does not match its manifest: symbolic link`},
		{name: "manifest-symlink-outside", damage: func(h *hostile) {
			victim := filepath.Join(h.outside, "manifest.json")
			require.NoError(h.t, os.Rename(h.path("data/manifest.json"), victim))
			require.NoError(h.t, os.Symlink(victim, h.path("data/manifest.json")))
		}, verify: `data/manifest\.json: invalid manifest: is a symbolic link`},
		{name: "events-middle-fifo", damage: func(h *hostile) {
			rel := h.middle("events")
			h.remove(rel)
			require.NoError(h.t, syscall.Mkfifo(h.path(rel), 0o644))
		}, verify: `data/events/\d{20}\.jsonl\.zst: archive data does not match its manifest: (is )?not a regular file`},
		{name: "manifest-fifo", damage: func(h *hostile) {
			h.remove("data/manifest.json")
			require.NoError(h.t, syscall.Mkfifo(h.path("data/manifest.json"), 0o644))
		}, verify: `data/manifest\.json: invalid manifest: is not a regular file`},
		{name: "bag-info-fifo", damage: func(h *hostile) {
			h.remove("bag-info.txt")
			require.NoError(h.t, syscall.Mkfifo(h.path("bag-info.txt"), 0o644))
		}, verify: `bag-info\.txt: invalid BagIt bag: is not a regular file`},
		// The manifest (BagIt files resealed to match it).
		{name: "manifest-path-dotdot", damage: func(h *hostile) {
			require.NoError(h.t, os.WriteFile(filepath.Join(h.outside, "victim.jsonl.zst"), h.read(h.first("events")), 0o644))
			h.editManifest(func(m map[string]any) {
				m["chunks"].([]any)[0].(map[string]any)["path"] = "events/../../../outside/victim.jsonl.zst"
			})
		}, verify: `data/manifest\.json: invalid manifest: .* at /chunks/0/path: does not match pattern`},
		{name: "manifest-path-absolute", damage: func(h *hostile) {
			h.editManifest(func(m map[string]any) { m["chunks"].([]any)[1].(map[string]any)["path"] = "/etc/passwd" })
		}, verify: `data/manifest\.json: invalid manifest: .* at /chunks/1/path: does not match pattern`},
		{name: "manifest-version-3", damage: func(h *hostile) {
			h.editManifest(func(m map[string]any) { m["version"] = json.Number("3") })
		}, verify: `data/manifest\.json: unsupported archive format version: version 3`},
		{name: "manifest-version-2-without-transactions", damage: func(h *hostile) {
			h.editManifest(func(m map[string]any) { m["version"] = json.Number("2") })
		}, verify: `data/manifest\.json: invalid manifest: version 2 without a member of version 2`},
		{name: "manifest-count-lies", damage: func(h *hostile) {
			h.editManifest(func(m map[string]any) {
				ev := m["events"].(map[string]any)
				ev["count"] = json.Number(fmt.Sprint(num(ev["count"]) + 1))
			})
		}, verify: `data/manifest\.json: invalid manifest: events: count \d+, but the chunks hold \d+ records`},
		{name: "manifest-chunk-first-lies", damage: func(h *hostile) {
			h.editManifest(func(m map[string]any) {
				c := entry(m, h.middle("events"))
				c["first"] = json.Number(fmt.Sprint(num(c["first"]) + 1))
			})
		}, verify: `data/manifest\.json: invalid manifest: chunk \d+ \(events/\d{20}\.jsonl\.zst\): first \d+ does not match the name`},
		{name: "manifest-not-json", damage: func(h *hostile) {
			b := h.read("data/manifest.json")
			payload := strings.Replace(string(h.read("manifest-sha256.txt")), hexSHA(b), hexSHA(b[:len(b)/2]), 1)
			h.write("data/manifest.json", b[:len(b)/2])
			h.write("manifest-sha256.txt", []byte(payload))
			h.resealTags()
		}, verify: `data/manifest\.json: invalid manifest: invalid JSON`},
		{name: "manifest-missing", damage: func(h *hostile) { h.remove("data/manifest.json") }, verify: `not an axarchive archive: no data/manifest\.json`},
		{name: "manifest-huge-sparse", damage: func(h *hostile) {
			require.NoError(h.t, os.Truncate(h.path("data/manifest.json"), 1<<30))
		}, verify: `data/manifest\.json: archive data does not match its manifest: larger than \d+ bytes`},
		{name: "snapshots-last-records-lie", damage: func(h *hostile) {
			// A consistent manifest that claims one snapshot more than the last chunk holds.
			h.editManifest(func(m map[string]any) {
				c := entry(m, h.last("snapshots"))
				c["records"] = json.Number(fmt.Sprint(num(c["records"]) + 1))
				c["last"] = json.Number(fmt.Sprint(num(c["last"]) + 1))
				sn := m["snapshots"].(map[string]any)
				sn["count"] = json.Number(fmt.Sprint(num(sn["count"]) + 1))
				tc := sn["types"].([]any)[0].(map[string]any)
				tc["count"] = json.Number(fmt.Sprint(num(tc["count"]) + 1))
			})
		}, verify: `data/snapshots/\d{20}\.jsonl\.zst: archive data does not match its manifest: holds \d+ records, the manifest says \d+`},
		{name: "events-digest-lies", damage: func(h *hostile) {
			// Another events digest, with the fingerprint made to match it.
			h.editManifest(func(m map[string]any) {
				e := sha256.Sum256([]byte("other events"))
				s, _ := hex.DecodeString(m["snapshots"].(map[string]any)["sha256"].(string))
				m["events"].(map[string]any)["sha256"] = hex.EncodeToString(e[:])
				m["fingerprint"] = hexSHA(append(e[:], s...))
			})
			info := regexp.MustCompile(`(?m)^Axarchive-Fingerprint: .*$`).ReplaceAllString(string(h.read("bag-info.txt")), "Axarchive-Fingerprint: "+h.manifest()["fingerprint"].(string))
			h.write("bag-info.txt", []byte(info))
			h.resealTags()
		}, verify: `data/manifest\.json: archive data does not match its manifest: events digest is [0-9a-f]{64}, the manifest says`},
		// Records (the chunk rewritten and resealed: its digests match, its content does not).
		{name: "events-middle-invalid-utf8", damage: line("events", middle, editLine(4, func(l []byte) []byte {
			i := bytes.Index(l, []byte(`"messageId":"`)) + len(`"messageId":"`)
			l[i] = 0xff
			return l
		})), verify: `data/events/\d{20}\.jsonl\.zst:5 \(token \d+\): invalid record: not valid UTF-8`},
		{name: "events-first-invalid-json", damage: line("events", first, editLine(0, func(l []byte) []byte {
			return append(l[:len(l)-2], '\n')
		})), verify: `data/events/\d{20}\.jsonl\.zst:1 \(token 0\): invalid record: invalid JSON`},
		{name: "snapshots-first-schema-invalid", damage: line("snapshots", first, editLine(1, func(l []byte) []byte {
			return regexp.MustCompile(`"messageId":"[^"]*"`).ReplaceAll(l, []byte(`"messageId":5`))
		})), verify: `data/snapshots/\d{20}\.jsonl\.zst:2 \(token 1\): invalid record: not valid against snapshot\.v1\.json: at /messageId`},
		{name: "events-last-noncanonical", damage: line("events", last, editLine(2, func(l []byte) []byte {
			return bytes.Replace(l, []byte(`"messageId":`), []byte(`"messageId": `), 1)
		})), verify: `data/events/\d{20}\.jsonl\.zst:3 \(token \d+\): invalid record: not in canonical form`},
		{name: "events-middle-duplicate-token", damage: line("events", middle, func(lines [][]byte) [][]byte {
			lines[6] = lines[5]
			return lines
		}), verify: `data/events/\d{20}\.jsonl\.zst:7 \(token \d+\): records out of sequence: not after token \d+ \(duplicate or out of order\)`},
		{name: "events-first-out-of-order", damage: line("events", first, func(lines [][]byte) [][]byte {
			lines[3], lines[4] = lines[4], lines[3]
			return lines
		}), verify: `data/events/\d{20}\.jsonl\.zst:5 \(token 3\): records out of sequence: not after token 4`},
		{name: "snapshots-last-duplicate-position", damage: line("snapshots", last, func(lines [][]byte) [][]byte {
			lines[1] = lines[0]
			return lines
		}), verify: `data/snapshots/\d{20}\.jsonl\.zst:2 \(token 20\): records out of sequence: not after position 20`},
		{name: "events-middle-blank-line", damage: line("events", middle, func(lines [][]byte) [][]byte {
			return slices.Insert(lines, 3, []byte("\n"))
		}), verify: `data/events/\d{20}\.jsonl\.zst:4: invalid record: empty line`},
		{name: "events-last-crlf", damage: line("events", last, editLine(0, func(l []byte) []byte {
			return append(l[:len(l)-1], '\r', '\n')
		})), verify: `data/events/\d{20}\.jsonl\.zst:1 \(token \d+\): invalid record: not in canonical form`},
		{name: "events-last-line-too-long", heavy: true, maxAlloc: 512 << 20, damage: line("events", last, func(lines [][]byte) [][]byte {
			l := lines[len(lines)-1]
			long := append(l[:len(l)-2:len(l)-2], []byte(`,"x":"`)...)
			long = append(long, bytes.Repeat([]byte("a"), 64<<20)...)
			return append(lines[:len(lines)-1], append(long, '"', '}', '\n'))
		}), verify: `data/events/\d{20}\.jsonl\.zst:20: record exceeds the maximum record size: line of \d+ bytes is longer than 67108864`},
		// zstd frames (the file resealed: digests match, the frame does not).
		{name: "events-middle-zstd-bomb", damage: func(h *hostile) {
			h.setChunk(h.middle("events"), bomb(32768), nil) // 4 GiB of output
		}, maxAlloc: 100 << 20, verify: `data/events/\d{20}\.jsonl\.zst: archive data does not match its manifest: decompresses to more than the \d+ bytes of the manifest`},
		{name: "snapshots-first-zstd-window-too-large", damage: func(h *hostile) {
			h.setChunk(h.first("snapshots"), zstdFrame(30, true, []zblock{{rle: true, data: []byte{'a'}, n: 1000}}), nil)
		}, verify: `data/snapshots/\d{20}\.jsonl\.zst: archive data does not match its manifest: zstd frame: window of 1073741824 bytes exceeds 8388608`},
		{name: "events-first-two-frames", damage: func(h *hostile) {
			rel := h.first("events")
			b := h.read(rel)
			h.setChunk(rel, append(slices.Clone(b), b...), nil)
		}, verify: `data/events/\d{20}\.jsonl\.zst: after line \d+: archive data does not match its manifest: zstd frame: data after the end of the frame`},
		{name: "events-last-skippable-frame", damage: func(h *hostile) {
			rel := h.last("events")
			skip := []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'j', 'u', 'n', 'k'}
			h.setChunk(rel, append(skip, h.read(rel)...), nil)
		}, verify: `data/events/\d{20}\.jsonl\.zst: archive data does not match its manifest: zstd frame: skippable frames are not allowed`},
		{name: "events-middle-no-checksum", damage: func(h *hostile) {
			rel := h.middle("events")
			raw := bytes.Join(h.lines(rel), nil)
			h.setChunk(rel, zstdFrame(20, false, []zblock{{data: raw}}), nil)
		}, verify: `data/events/\d{20}\.jsonl\.zst: archive data does not match its manifest: zstd frame: no content checksum`},
		// zstd frames in every place a reader could skip over them, for every reader.
		{name: "events-middle-skippable-frame-before", quick: true, cat: "events", damage: zstdDamage(middle, "events", "skip-before"),
			verify: `data/events/\d{20}\.jsonl\.zst: archive data does not match its manifest: zstd frame: skippable frames are not allowed`},
		{name: "events-first-skippable-frame-after", quick: true, cat: "events", damage: zstdDamage(first, "events", "skip-after"),
			verify: `data/events/\d{20}\.jsonl\.zst: (after line \d+: )?archive data does not match its manifest: zstd frame: data after the end of the frame`},
		{name: "events-last-skippable-frame-between", quick: true, cat: "events", damage: zstdDamage(last, "events", "skip-between"),
			verify: `data/events/\d{20}\.jsonl\.zst: (after line \d+: )?archive data does not match its manifest: zstd frame: data after the end of the frame`},
		{name: "events-middle-empty-frame-after", quick: true, cat: "events", damage: zstdDamage(middle, "events", "empty-after"),
			verify: `data/events/\d{20}\.jsonl\.zst: (after line \d+: )?archive data does not match its manifest: zstd frame: data after the end of the frame`},
		{name: "events-middle-split-in-two-frames", quick: true, cat: "events", damage: zstdDamage(middle, "events", "split"),
			verify: `data/events/\d{20}\.jsonl\.zst: (after line \d+: )?archive data does not match its manifest: zstd frame: data after the end of the frame`},
		{name: "snapshots-first-skippable-frame-before", quick: true, cat: "snapshots", damage: zstdDamage(first, "snapshots", "skip-before"),
			verify: `data/snapshots/\d{20}\.jsonl\.zst: archive data does not match its manifest: zstd frame: skippable frames are not allowed`},
		{name: "snapshots-last-skippable-frame-between", quick: true, cat: "snapshots", damage: zstdDamage(last, "snapshots", "skip-between"),
			verify: `data/snapshots/\d{20}\.jsonl\.zst: (after line \d+: )?archive data does not match its manifest: zstd frame: data after the end of the frame`},
		{name: "snapshots-last-skippable-frame-after", quick: true, cat: "snapshots", damage: zstdDamage(last, "snapshots", "skip-after"),
			verify: `data/snapshots/\d{20}\.jsonl\.zst: (after line \d+: )?archive data does not match its manifest: zstd frame: data after the end of the frame`},
		// JSON that two readers would read differently: a member name twice, anywhere.
		{name: "manifest-version-twice", quick: true, cat: "events", damage: manifestText(`"version": 1,`, `"version": 2,
  "version": 1,`),
			verify: `data/manifest\.json:\d+: invalid manifest: duplicate member name "version" at byte \d+`},
		{name: "manifest-count-twice", quick: true, cat: "snapshots", damage: manifestText(`"count": `, `"count": 1, "count": `),
			verify: `data/manifest\.json:\d+: invalid manifest: duplicate member name "count" at byte \d+`},
		{name: "manifest-chunk-records-twice", quick: true, damage: manifestText(`"records": `, `"records": 1, "records": `),
			verify: `data/manifest\.json:\d+: invalid manifest: duplicate member name "records" at byte \d+`},
		{name: "manifest-escaped-fingerprint-twice", quick: true, damage: manifestText(`"fingerprint": `, `"\u0066ingerprint": "x", "fingerprint": `),
			verify: `data/manifest\.json:\d+: invalid manifest: duplicate member name "fingerprint" at byte \d+`},
		{name: "manifest-fingerprint-case-variant", quick: true, cat: "events", damage: manifestText(`"version": 1,`, `"version": 1,
  "fingerprinT": "0",`), verify: `data/manifest\.json:\d+: invalid manifest: duplicate member name "fingerprint" \("fingerprinT" ignoring case`},
		{name: "manifest-version-case-variant", quick: true, damage: manifestText(`"version": 1,`, `"version": 1,
  "VERSION": 2,`), verify: `data/manifest\.json:\d+: invalid manifest: duplicate member name "VERSION" \("version" ignoring case`},
		{name: "events-middle-record-token-twice", damage: line("events", middle, editLine(3, func(l []byte) []byte {
			return append(l[:len(l)-2:len(l)-2], []byte(`,"token":1}`+"\n")...)
		})), verify: `data/events/\d{20}\.jsonl\.zst:4 \(token \d+\): invalid record: duplicate member name "token" at byte \d+`},
		{name: "snapshots-first-record-payload-type-twice", damage: line("snapshots", first, editLine(0, func(l []byte) []byte {
			return bytes.Replace(l, []byte(`"payload":{"type":`), []byte(`"payload":{"type":"x","type":`), 1)
		})), verify: `data/snapshots/\d{20}\.jsonl\.zst:1 \(token \d+\): invalid record: duplicate member name "type" at byte \d+`},
		// Cost bombs in small files: refused before any decoder or schema check runs.
		{name: "manifest-100000-nested-arrays-in-notes", quick: true, cat: "events", damage: manifestText(`"notes": [`, `"notes": [`+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+`,`),
			verify: `data/manifest\.json:\d+: invalid manifest: nested more than 32 deep at byte \d+`},
		{name: "manifest-object-of-a-million-members", quick: true, damage: manifestText(`"notes": [`, `"notes": [`+manyMembers(1000000)+`,`),
			verify: `data/manifest\.json:\d+: invalid manifest: object with more than 256 members at byte \d+`},
		{name: "manifest-chunk-table-over-16MiB", quick: true, damage: chunkTable(60000, 0),
			verify: `data/manifest\.json: archive data does not match its manifest: larger than 16777216 bytes`},
		{name: "manifest-20000-chunks-and-20000-gaps", quick: true, damage: chunkTable(20000, 20000),
			verify: `data/manifest\.json: invalid manifest: `},
		{name: "manifest-20MiB-string", quick: true, damage: manifestText(`"notes": [`, `"notes": [{"kind":"x","token":-1,"detail":"`+strings.Repeat("a", 20<<20)+`"},`),
			verify: `data/manifest\.json: archive data does not match its manifest: larger than 16777216 bytes`},
		{name: "events-middle-record-100000-nested-arrays", damage: line("events", middle, editLine(2, func(l []byte) []byte {
			return append(l[:len(l)-2:len(l)-2], []byte(`,"x":`+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+"}\n")...)
		})), verify: `data/events/\d{20}\.jsonl\.zst:3 \(token \d+\): invalid record: nested more than 32 deep at byte \d+`},
		{name: "events-last-record-8MiB-escaped-string", damage: line("events", last, editLine(1, func(l []byte) []byte {
			return append(l[:len(l)-2:len(l)-2], []byte(`,"x":"`+strings.Repeat(`\u00e9`, 8<<20/6)+`"}`+"\n")...)
		})), verify: `data/events/\d{20}\.jsonl\.zst:2 \(token \d+\): invalid record: `},
		// The BagIt files.
		{name: "bagit-txt-wrong", damage: func(h *hostile) {
			h.write("bagit.txt", []byte("BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n"))
			h.resealTags()
		}, verify: `bagit\.txt: invalid BagIt bag: want exactly`},
		{name: "bagit-txt-missing", damage: func(h *hostile) { h.remove("bagit.txt"); h.resealTags() }, verify: `bagit\.txt: invalid BagIt bag: missing`},
		{name: "bag-info-oxum-wrong", damage: func(h *hostile) {
			info := regexp.MustCompile(`(?m)^Payload-Oxum: .*$`).ReplaceAllString(string(h.read("bag-info.txt")), "Payload-Oxum: 1.1")
			h.write("bag-info.txt", []byte(info))
			h.resealTags()
		}, verify: `bag-info\.txt:\d+: invalid BagIt bag: Payload-Oxum is 1\.1`},
		{name: "bag-info-fingerprint-wrong", damage: func(h *hostile) {
			info := regexp.MustCompile(`(?m)^Axarchive-Fingerprint: .*$`).ReplaceAllString(string(h.read("bag-info.txt")), "Axarchive-Fingerprint: "+strings.Repeat("0", 64))
			h.write("bag-info.txt", []byte(info))
			h.resealTags()
		}, verify: `bag-info\.txt:\d+: invalid BagIt bag: Axarchive-Fingerprint`},
		{name: "payload-manifest-wrong-digest", damage: func(h *hostile) {
			rel := h.middle("snapshots")
			b := strings.Replace(string(h.read("manifest-sha256.txt")), hexSHA(h.read(rel)), strings.Repeat("1", 64), 1)
			h.write("manifest-sha256.txt", []byte(b))
			h.resealTags()
		}, verify: `manifest-sha256\.txt:\d+: invalid BagIt bag: sha256 of data/snapshots/`},
		{name: "payload-manifest-escaping-path", damage: func(h *hostile) {
			// A FIFO as the victim: opening it would hang the command.
			require.NoError(h.t, syscall.Mkfifo(filepath.Join(h.outside, "victim"), 0o644))
			b := string(h.read("manifest-sha256.txt")) + strings.Repeat("2", 64) + "  data/../../outside/victim\n"
			h.write("manifest-sha256.txt", []byte(b))
			h.resealTags()
		}, verify: `manifest-sha256\.txt:\d+: invalid BagIt bag: lists "data/\.\./\.\./outside/victim"`},
		{name: "payload-manifest-absolute-path", damage: func(h *hostile) {
			b := string(h.read("manifest-sha256.txt")) + strings.Repeat("3", 64) + "  /etc/passwd\n"
			h.write("manifest-sha256.txt", []byte(b))
			h.resealTags()
		}, verify: `manifest-sha256\.txt:\d+: invalid BagIt bag: lists "/etc/passwd"`},
		{name: "tag-manifest-wrong-digest", damage: func(h *hostile) {
			b := strings.Replace(string(h.read("tagmanifest-sha256.txt")), hexSHA(h.read("bagit.txt")), strings.Repeat("4", 64), 1)
			h.write("tagmanifest-sha256.txt", []byte(b))
		}, verify: `bagit\.txt: invalid BagIt bag: sha256 is [0-9a-f]{64}, tagmanifest-sha256\.txt says`},
		{name: "tag-manifest-missing", damage: func(h *hostile) { h.remove("tagmanifest-sha256.txt") }, verify: `tagmanifest-sha256\.txt: invalid BagIt bag: missing`},
	}
}

// hostileBase is a good archive: 500 events in 25 chunks and 33 snapshots in 2, exported from srv.
func hostileBase(t *testing.T, srv *axontest.Server) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "base")
	requireCode(t, run(t, plain(t), nil, "export", "-o", dir, "--server", srv.Addr(), "--context", srcContext, "--chunk-records", "20"), 0)
	requireCode(t, run(t, plain(t), nil, "verify", dir), 0)
	return dir
}

// TestHostileArchives: every kind of damage of the archive issue's "bad input" list, at the positions that
// matter (first, middle and last chunk; events and snapshots; the manifest; each BagIt file), makes
// `verify` exit 3 naming the problem, and `import` fail (exit 3) before sending anything, without waiting on
// special files, and without writing anything inside or outside the archive.
func TestHostileArchives(t *testing.T) {
	testHostileArchives(t, false)
}

// TestLongHostileArchives adds the cases that take memory and time (a 64 MiB record line).
func TestLongHostileArchives(t *testing.T) {
	long(t)
	testHostileArchives(t, true)
}

func testHostileArchives(t *testing.T, heavy bool) {
	srv := newServer(t, 500, 51)
	base := hostileBase(t, srv)
	ran := 0
	for i, c := range hostileCases() {
		if c.heavy != heavy {
			continue
		}
		ran++
		t.Run(c.name, func(t *testing.T) {
			sandbox := t.TempDir()
			h := &hostile{t: t, dir: filepath.Join(sandbox, "archive"), outside: filepath.Join(sandbox, "outside")}
			require.NoError(t, os.CopyFS(h.dir, os.DirFS(base)))
			require.NoError(t, os.Mkdir(h.outside, 0o755))
			c.damage(h)
			if keep := os.Getenv("AXARCHIVE_HOSTILE_KEEP"); keep != "" {
				// For measuring each input's time and peak memory outside the test process.
				_ = os.CopyFS(filepath.Join(keep, c.name), os.DirFS(h.dir))
			}
			before := snapshotFiles(t, sandbox)
			appends := srv.Calls(axontest.MethodAppendEvent) + srv.Calls(axontest.MethodAppendSnapshot)

			start := time.Now()
			r := run(t, plain(t), nil, "verify", h.dir)
			requireCode(t, r, 3)
			require.Regexp(t, c.verify, r.Stderr, "verify must name the problem:\n%s", r)
			verifyOut := r.Stderr
			require.Less(t, time.Since(start), 20*time.Second)

			if c.quick {
				r = run(t, plain(t), nil, "verify", "--quick", h.dir)
				requireCode(t, r, 3)
				require.Regexp(t, c.verify, r.Stderr, "verify --quick must name the problem:\n%s", r)
			}
			if c.cat != "" {
				args := []string{"cat", h.dir}
				if c.cat == "snapshots" {
					args = []string{"cat", "--snapshots", h.dir}
				}
				r = run(t, plain(t), nil, args...)
				requireCode(t, r, 3)
				require.Regexp(t, c.verify, r.Stderr, "cat must name the problem:\n%s", r)
			}

			target := fmt.Sprintf("hostile-%d", i)
			r = run(t, plain(t), nil, "import", "--server", srv.Addr(), "--context", target, h.dir)
			requireCode(t, r, 3)
			want := c.verify
			if c.importErr != "" {
				want = c.importErr
			}
			require.Regexp(t, want, r.Stderr, "import must name the problem:\n%s", r)

			if os.Getenv("AXARCHIVE_SHOW") != "" {
				t.Logf("verify:\n%s\nimport:\n%s", verifyOut, r.Stderr)
			}
			if c.maxAlloc > 0 {
				var verr error
				n := allocated(func() {
					a, err := archive.Open(h.dir)
					require.NoError(t, err)
					_, verr = a.Verify(context.Background(), archive.VerifyOptions{})
				})
				require.ErrorIs(t, verr, archive.ErrVerify)
				require.Less(t, n, c.maxAlloc, "bytes allocated by Open and Verify")
				t.Logf("Open and Verify allocated %d MiB", n>>20)
			}
			require.Zero(t, srv.EventCount(target), "import sent events")
			require.Zero(t, srv.SnapshotCount(target), "import sent snapshots")
			require.Equal(t, appends, srv.Calls(axontest.MethodAppendEvent)+srv.Calls(axontest.MethodAppendSnapshot), "import called an append")
			require.Equal(t, before, snapshotFiles(t, sandbox), "verify and import changed files")
		})
	}
	require.GreaterOrEqual(t, ran, 1)
	t.Logf("%d hostile archives", ran)
}

func jsonNumber(n int64) json.Number { return json.Number(fmt.Sprint(n)) }

// manifestText replaces the first old in the manifest's text with new and reseals the bag: JSON that the
// map-based editManifest cannot write (a member twice, nesting).
func manifestText(old, new string) func(h *hostile) {
	return func(h *hostile) {
		b := string(h.read("data/manifest.json"))
		require.Contains(h.t, b, old)
		h.resealManifest([]byte(strings.Replace(b, old, new, 1)))
	}
}

// resealManifest writes the manifest and updates its digest in the BagIt files, without parsing it (a test
// helper's decoder may refuse it, or list files that do not exist).
func (h *hostile) resealManifest(b []byte) {
	h.write("data/manifest.json", b)
	payload := string(h.read("manifest-sha256.txt"))
	payload = regexp.MustCompile(`(?m)^[0-9a-f]{64}  data/manifest\.json$`).ReplaceAllString(payload, hexSHA(b)+"  data/manifest.json")
	h.write("manifest-sha256.txt", []byte(payload))
	h.resealTags()
}

func manyMembers(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"m%d":0`, i)
	}
	b.WriteString("}")
	return b.String()
}

// chunkTable adds n chunk entries (of files that do not exist) and gaps entries to the manifest: a chunk
// table too large, or large enough that a check comparing every chunk with every gap would take minutes.
func chunkTable(n, gaps int) func(h *hostile) {
	return func(h *hostile) {
		var chunks, gapList strings.Builder
		for i := range n {
			fmt.Fprintf(&chunks, `{"path":"events/%020d.jsonl.zst","stream":"events","records":1,"first":%d,"last":%d,"size":100,"sha256":"%064d","rawSize":100,"rawSha256":"%064d"},`,
				1_000_000+2*i, 1_000_000+2*i, 1_000_000+2*i, 0, 0)
		}
		for i := range gaps {
			fmt.Fprintf(&gapList, `{"from":%d,"to":%d,"cause":"x"},`, 1_000_001+2*i, 1_000_001+2*i)
		}
		b := string(h.read("data/manifest.json"))
		b = strings.Replace(b, `"chunks": [`, `"chunks": [`+chunks.String(), 1)
		if gaps > 0 {
			b = strings.Replace(b, `"gaps": []`, `"gaps": [`+strings.TrimSuffix(gapList.String(), ",")+`]`, 1)
		}
		h.resealManifest([]byte(b))
	}
}

// zstdDamage rewrites a chunk of a stream with extra zstd frames: a skippable frame before, between or after
// the data frame, an empty frame after it, or the content split into two frames. The manifest's size and
// digest are made to match the file, so only the frame structure is wrong.
func zstdDamage(pick func(h *hostile, stream string) string, stream, how string) func(h *hostile) {
	skippable := []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'j', 'u', 'n', 'k'}
	return func(h *hostile) {
		rel := pick(h, stream)
		b := h.read(rel)
		lines := h.lines(rel)
		half := len(lines) / 2
		first, second := compress(h.t, bytes.Join(lines[:half], nil)), compress(h.t, bytes.Join(lines[half:], nil))
		var file []byte
		switch how {
		case "skip-before":
			file = append(slices.Clone(skippable), b...)
		case "skip-after":
			file = append(slices.Clone(b), skippable...)
		case "skip-between":
			file = append(append(first, skippable...), second...)
		case "empty-after":
			file = append(slices.Clone(b), compress(h.t, nil)...)
		case "split":
			file = append(first, second...)
		default:
			panic(how)
		}
		h.setChunk(rel, file, nil)
	}
}
