package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wantProblem describes a problem Verify must report: its sentinel, file, and (when not zero) line and
// token, and a piece of its message.
type wantProblem struct {
	err      error
	path     string
	line     int64
	token    int64 // 0: not checked
	contains string
}

func (w wantProblem) matches(p *Error) bool {
	return errors.Is(p, w.err) && p.Path == w.path &&
		(w.line == 0 || p.Line == w.line) && (w.token == 0 || p.Token == w.token) &&
		strings.Contains(p.Error(), w.contains)
}

const (
	chunk0 = "data/events/00000000000000000000.jsonl.zst"
	chunk1 = "data/events/00000000000000000008.jsonl.zst"
	snap0  = "data/snapshots/00000000000000000000.jsonl.zst"
)

// line returns a canonical event line of the golden records' shape at token tok.
func eventLine(tok int64) []byte {
	r := plainEvents(tok, 1)[0]
	return AppendEventJSON(nil, &r)
}

// lines joins canonical event lines of the given tokens.
func lines(tokens ...int64) []byte {
	var b []byte
	for _, t := range tokens {
		b = append(b, eventLine(t)...)
	}
	return b
}

// TestVerifyBadInput damages a copy of the golden archive in each way the format must survive and checks
// that the damage is reported where it is, never panics, and writes nothing.
func TestVerifyBadInput(t *testing.T) {
	bigLine := append(append([]byte(`{"token":0,"messageId":"`), bytes.Repeat([]byte("a"), maxRecordBytes)...), "\"}\n"...)
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		openErr error
		quick   bool // the problem is found by a quick verification too
		want    []wantProblem
	}{
		// Paths that leave the archive.
		{name: "manifest path with ..", openErr: ErrManifest, damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[0].Path = "events/../../../outside.jsonl.zst" })
		}},
		{name: "manifest path absolute", openErr: ErrManifest, damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[0].Path = "/etc/passwd" })
		}},
		{name: "manifest path in another stream", openErr: ErrManifest, damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[0].Stream = manifest.StreamSnapshots })
		}},
		{name: "chunk is a symlink", quick: true, damage: func(t *testing.T, dir string) {
			outside := filepath.Join(filepath.Dir(dir), "outside.zst")
			require.NoError(t, os.Rename(filepath.Join(dir, chunk0), outside))
			require.NoError(t, os.Symlink(outside, filepath.Join(dir, chunk0)))
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk0, contains: "symbolic link"}}},
		{name: "events directory is a symlink", quick: true, damage: func(t *testing.T, dir string) {
			outside := filepath.Join(filepath.Dir(dir), "outside")
			require.NoError(t, os.Rename(filepath.Join(dir, "data/events"), outside))
			require.NoError(t, os.Symlink(outside, filepath.Join(dir, "data/events")))
		}, want: []wantProblem{{err: ErrCorrupt, path: "data/events", contains: "symbolic link"}, {err: ErrCorrupt, path: chunk0, contains: "symbolic link"}}},
		{name: "BagIt manifest lists a path outside", quick: true, damage: func(t *testing.T, dir string) {
			appendFile(t, filepath.Join(dir, bagManifestPath), strings.Repeat("0", 64)+"  ../../etc/passwd\n")
		}, want: []wantProblem{{err: ErrBag, path: bagManifestPath, contains: `"../../etc/passwd"`}}},

		{name: "tag manifest lists a path outside", quick: true, damage: func(t *testing.T, dir string) {
			appendFile(t, filepath.Join(dir, tagManifestPath), strings.Repeat("0", 64)+"  /etc/passwd\n")
		}, want: []wantProblem{{err: ErrBag, path: tagManifestPath, contains: `"/etc/passwd"`}}},
		{name: "data directory is a symlink", openErr: ErrManifest, damage: func(t *testing.T, dir string) {
			outside := filepath.Join(filepath.Dir(dir), "data-outside")
			require.NoError(t, os.Rename(filepath.Join(dir, "data"), outside))
			require.NoError(t, os.Symlink(outside, filepath.Join(dir, "data")))
		}},

		// Files missing or not listed.
		{name: "chunk missing", quick: true, damage: func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, chunk1)))
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk1, contains: "missing"}}},
		{name: "file not listed", quick: true, damage: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "data/events/00000000000000000099.jsonl.zst"), "x")
		}, want: []wantProblem{{err: ErrCorrupt, path: "data/events/00000000000000000099.jsonl.zst", contains: "not listed"}}},
		{name: "unexpected file at the root", quick: true, damage: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "README"), "x")
		}, want: []wantProblem{{err: ErrCorrupt, path: "README", contains: "unexpected"}}},
		{name: "leftover temporary file", quick: true, damage: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, chunk0+".tmp"), "x")
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk0 + ".tmp", contains: "not listed"}}},
		{name: "tag file missing", quick: true, damage: func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, bagInfoPath)))
		}, want: []wantProblem{{err: ErrBag, path: bagInfoPath, contains: "missing"}}},

		// Damaged chunks.
		{name: "one flipped bit", quick: true, damage: func(t *testing.T, dir string) {
			flipBit(t, filepath.Join(dir, chunk1), 100)
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk1, contains: "sha256 is"}, {err: ErrBag, path: chunk1, contains: "sha256 is"}}},
		{name: "flipped bit in the frame header", quick: true, damage: func(t *testing.T, dir string) {
			flipBit(t, filepath.Join(dir, chunk1), 4) // sets the dictionary flag
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk1, contains: "zstd frame"}}},
		{name: "truncated chunk", quick: true, damage: func(t *testing.T, dir string) {
			truncate(t, filepath.Join(dir, chunk0), 100)
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk0, contains: "size is 100 bytes"}}},
		{name: "truncated chunk, manifest resealed", quick: true, damage: func(t *testing.T, dir string) {
			p := filepath.Join(dir, chunk0)
			truncate(t, p, 100)
			zb, _ := os.ReadFile(p)
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[0].Size, m.Chunks[0].SHA256 = 100, sha256hex(zb) })
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk0, contains: "truncated"}}},
		{name: "data after the frame", quick: true, damage: func(t *testing.T, dir string) {
			raw := chunkRaw(t, dir, 1)
			rewriteChunk(t, dir, 1, raw, func(raw []byte) []byte { return append(zstdCompress(raw), zstdCompress([]byte("x"))...) })
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk1, contains: "after the end of the frame"}}},
		{name: "frame without checksum", quick: true, damage: func(t *testing.T, dir string) {
			rewriteChunk(t, dir, 1, chunkRaw(t, dir, 1), func(raw []byte) []byte {
				return compressWith(t, raw, false, 1<<20)
			})
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk1, contains: "no content checksum"}}},
		{name: "window too large", quick: true, damage: func(t *testing.T, dir string) {
			rewriteChunk(t, dir, 1, chunkRaw(t, dir, 1), func(raw []byte) []byte {
				return compressWith(t, raw, true, 64<<20)
			})
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk1, contains: "window"}}},
		{name: "zstd bomb", damage: func(t *testing.T, dir string) {
			// The chunk's lines followed by 256 MiB of LF compress to a few KiB; the manifest gives the
			// size of the lines.
			zb := compressWith(t, chunkRaw(t, dir, 1), true, 1<<20, 256<<20)
			p := filepath.Join(dir, chunk1)
			require.NoError(t, os.WriteFile(p, zb, 0o644))
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[1].Size, m.Chunks[1].SHA256 = int64(len(zb)), sha256hex(zb) })
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk1, contains: "decompresses to more than"}}},
		{name: "over-long line", damage: func(t *testing.T, dir string) {
			raw := chunkRaw(t, dir, 0)
			rewriteChunk(t, dir, 0, append(bigLine, raw[bytes.IndexByte(raw, '\n')+1:]...), nil)
		}, want: []wantProblem{{err: ErrTooLarge, path: chunk0, line: 1}}},

		// Bad records.
		{name: "invalid UTF-8", damage: func(t *testing.T, dir string) {
			raw := chunkRaw(t, dir, 0)
			rewriteChunk(t, dir, 0, bytes.Replace(raw, []byte(`"messageId":"m2"`), []byte("\"messageId\":\"m\xff\""), 1), nil)
		}, want: []wantProblem{{err: ErrRecord, path: chunk0, line: 3, token: 2}}},
		{name: "invalid JSON", damage: func(t *testing.T, dir string) {
			raw := chunkRaw(t, dir, 0)
			rewriteChunk(t, dir, 0, bytes.Replace(raw, []byte(`{"token":4,"messageId":"m4"`), []byte(`{"token":4,"messageId":"m4`), 1), nil)
		}, want: []wantProblem{{err: ErrRecord, path: chunk0, line: 5, token: 4, contains: "invalid JSON"}}},
		{name: "schema-invalid record", damage: func(t *testing.T, dir string) {
			raw := chunkRaw(t, dir, 0)
			rewriteChunk(t, dir, 0, bytes.Replace(raw, []byte(`"messageId":"m5"`), []byte(`"messageId":5`), 1), nil)
		}, want: []wantProblem{{err: ErrRecord, path: chunk0, line: 6, token: 5, contains: "not valid against event.v1.json: at /messageId"}}},
		{name: "unknown member", damage: func(t *testing.T, dir string) {
			raw := chunkRaw(t, dir, 0)
			rewriteChunk(t, dir, 0, bytes.Replace(raw, []byte(`{"token":6,"messageId":"m6"`), []byte(`{"token":6,"messageId":"m6","mood":"happy"`), 1), nil)
		}, want: []wantProblem{{err: ErrRecord, path: chunk0, line: 7, token: 6, contains: "mood"}}},
		{name: "non-canonical record", damage: func(t *testing.T, dir string) {
			raw := chunkRaw(t, dir, 0)
			rewriteChunk(t, dir, 0, bytes.Replace(raw, []byte(`{"token":7,"messageId":"m7"`), []byte(`{"messageId":"m7","token":7`), 1), nil)
		}, want: []wantProblem{{err: ErrRecord, path: chunk0, line: 8, token: 7, contains: "canonical"}}},
		{name: "CR line ending", damage: func(t *testing.T, dir string) {
			raw := chunkRaw(t, dir, 0)
			rewriteChunk(t, dir, 0, bytes.Replace(raw, []byte("}\n{\"token\":2,"), []byte("}\r\n{\"token\":2,"), 1), nil)
		}, want: []wantProblem{{err: ErrRecord, path: chunk0, line: 2, token: 1}}},
		{name: "empty line", damage: func(t *testing.T, dir string) {
			raw := chunkRaw(t, dir, 0)
			rewriteChunk(t, dir, 0, bytes.Replace(raw, []byte("\n{\"token\":2,"), []byte("\n\n{\"token\":2,"), 1), nil)
		}, want: []wantProblem{{err: ErrRecord, path: chunk0, line: 3, contains: "empty line"}}},
		{name: "last line without LF", damage: func(t *testing.T, dir string) {
			raw := chunkRaw(t, dir, 0)
			rewriteChunk(t, dir, 0, raw[:len(raw)-1], nil)
		}, want: []wantProblem{{err: ErrRecord, path: chunk0, line: 8, contains: "no LF"}}},

		// Order and continuity.
		{name: "duplicate token", damage: func(t *testing.T, dir string) {
			rewriteChunk(t, dir, 1, lines(8, 9, 10, 10, 11, 12, 13, 15), nil)
		}, want: []wantProblem{{err: ErrSequence, path: chunk1, line: 4, token: 10, contains: "duplicate or out of order"}}},
		{name: "tokens out of order", damage: func(t *testing.T, dir string) {
			rewriteChunk(t, dir, 1, lines(8, 9, 11, 10, 12, 13, 14, 15), nil)
		}, want: []wantProblem{{err: ErrSequence, path: chunk1, line: 4, token: 10}}},
		{name: "token missing without a gap", damage: func(t *testing.T, dir string) {
			rewriteChunk(t, dir, 1, lines(8, 9, 10, 12, 13, 14, 15), nil)
		}, want: []wantProblem{{err: ErrSequence, path: chunk1, line: 4, token: 12, contains: "tokens 11 to 11 are missing"}, {err: ErrCorrupt, path: chunk1, contains: "holds 7 records, the manifest says 8"}}},
		{name: "token inside a declared gap", damage: func(t *testing.T, dir string) {
			rewriteChunk(t, dir, 1, lines(8, 9, 10, 11, 12, 13, 14, 15, 16), nil)
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[1].Last = 16; m.Gaps[0].From = 17; m.Events.Count++ })
		}, openErr: ErrManifest},
		{name: "token outside the chunk's range", damage: func(t *testing.T, dir string) {
			rewriteChunk(t, dir, 1, lines(8, 9, 10, 11, 12, 13, 14, 17), nil)
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk1, line: 8, token: 17, contains: "outside the chunk's range"}}},

		{name: "server snapshot positions with holes", damage: func(t *testing.T, dir string) {
			// From a server, positions are ordinals 0, 1, 2, …; the golden vector's 0, 2, 5 are store
			// positions of segment files.
			reseal(t, dir, func(m *manifest.Manifest) {
				m.Source = manifest.Source{Kind: manifest.SourceServer, Address: "x:8124", Context: "default"}
			})
		}, want: []wantProblem{{err: ErrSequence, path: snap0, line: 2, token: 2, contains: "must be its ordinal 1"}}},

		// Manifests that lie.
		// (Tokens are contiguous in the events stream, so a count there cannot lie without Open seeing it;
		// snapshot positions have room.)
		{name: "chunk record count", damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[5].Records++; m.Snapshots.Count++; m.Snapshots.Types[0].Count++ })
		}, want: []wantProblem{{err: ErrCorrupt, path: snap0, contains: "holds 3 records, the manifest says 4"}, {err: ErrCorrupt, path: manifestPath, contains: "records of type"}}},
		{name: "chunk last position", damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[5].Last = 4 })
		}, want: []wantProblem{{err: ErrCorrupt, path: snap0, line: 3, token: 5, contains: "outside the chunk's range"}}},
		{name: "rawSize", damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[1].RawSize++ })
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk1, contains: "rawSize"}}},
		{name: "rawSha256", damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[1].RawSHA256 = strings.Repeat("0", 64) })
		}, want: []wantProblem{{err: ErrCorrupt, path: chunk1, contains: "decompressed sha256"}}},
		{name: "events digest and fingerprint", damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) {
				m.Events.SHA256 = strings.Repeat("0", 64)
				m.Fingerprint, _ = combineDigests(m.Events.SHA256, m.Snapshots.SHA256)
			})
		}, want: []wantProblem{{err: ErrCorrupt, path: manifestPath, contains: "events digest"}, {err: ErrCorrupt, path: manifestPath, contains: "fingerprint of the records"}}},
		{name: "type counts", damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Events.Types[0].Count--; m.Events.Types[1].Count++ })
		}, want: []wantProblem{{err: ErrCorrupt, path: manifestPath, contains: "records of type"}}},
		{name: "events count", openErr: ErrManifest, damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Events.Count++ })
		}},
		{name: "range larger than the data", openErr: ErrManifest, damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Events.LastToken = 100 })
		}},
		{name: "fingerprint not of the digests", openErr: ErrManifest, damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Fingerprint = strings.Repeat("0", 64) })
		}},
		{name: "snapshots with mode none", openErr: ErrManifest, damage: func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Snapshots.Mode = manifest.SnapshotsNone })
		}},
		{name: "BagIt fingerprint", quick: true, damage: func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, bagInfoPath))
			write(t, filepath.Join(dir, bagInfoPath), strings.Replace(string(b), "Axarchive-Fingerprint: 1", "Axarchive-Fingerprint: 2", 1))
		}, want: []wantProblem{{err: ErrBag, path: bagInfoPath, line: 5}, {err: ErrBag, path: bagInfoPath, contains: "sha256 is"}}},
		{name: "Payload-Oxum", quick: true, damage: func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, bagInfoPath))
			s := strings.Replace(string(b), "Payload-Oxum: ", "Payload-Oxum: 1", 1)
			write(t, filepath.Join(dir, bagInfoPath), s)
			sum := sha256.Sum256([]byte(s))
			tm, _ := os.ReadFile(filepath.Join(dir, tagManifestPath))
			lines := strings.Split(string(tm), "\n")
			for i, l := range lines {
				if strings.HasSuffix(l, bagInfoPath) {
					lines[i] = hex.EncodeToString(sum[:]) + "  " + bagInfoPath
				}
			}
			write(t, filepath.Join(dir, tagManifestPath), strings.Join(lines, "\n"))
		}, want: []wantProblem{{err: ErrBag, path: bagInfoPath, contains: "Payload-Oxum"}}},

		// Hostile tag files: read and parsed in bounded time and memory.
		{name: "bag-info.txt of continuation lines", quick: true, damage: func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, bagInfoPath))
			oxum, rest, _ := strings.Cut(string(b), "Axarchive-Format")
			write(t, filepath.Join(dir, bagInfoPath), oxum+strings.Repeat(" x\n", 300000)+"Axarchive-Format"+rest)
		}, want: []wantProblem{{err: ErrBag, path: bagInfoPath, contains: "Payload-Oxum is"}, {err: ErrBag, path: bagInfoPath, contains: "sha256 is"}}},
		{name: "bag-info.txt of bad lines", quick: true, damage: func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, bagInfoPath))
			write(t, filepath.Join(dir, bagInfoPath), string(b)+strings.Repeat("?\n", 300000))
		}, want: []wantProblem{{err: ErrBag, path: bagInfoPath, line: 9}, {err: ErrBag, path: bagInfoPath, contains: "and 299900 more lines that do not parse"}}},
		{name: "bag-info.txt too large", quick: true, damage: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, bagInfoPath), strings.Repeat("L: v\n", 300000))
		}, want: []wantProblem{{err: ErrBag, path: bagInfoPath, contains: "larger than 1048576 bytes"}}},
		{name: "BagIt manifest too large", quick: true, damage: func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, bagManifestPath))
			write(t, filepath.Join(dir, bagManifestPath), strings.Repeat(string(b), 16<<20/len(b)+1))
		}, want: []wantProblem{{err: ErrBag, path: bagManifestPath, contains: "larger than 16777216 bytes"}}},

		// Format and version.
		{name: "unknown version", openErr: ErrVersion, damage: func(t *testing.T, dir string) {
			replaceIn(t, filepath.Join(dir, manifestPath), `"version": 1,`, `"version": 7,`)
		}},
		{name: "version not an integer", openErr: ErrManifest, damage: func(t *testing.T, dir string) {
			replaceIn(t, filepath.Join(dir, manifestPath), `"version": 1,`, `"version": "1",`)
		}},
		{name: "another format", openErr: ErrNotArchive, damage: func(t *testing.T, dir string) {
			replaceIn(t, filepath.Join(dir, manifestPath), `"format": "axarchive"`, `"format": "tar"`)
		}},
		{name: "manifest not JSON", openErr: ErrManifest, damage: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, manifestPath), "{")
		}},
		{name: "manifest missing", openErr: ErrNotArchive, damage: func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, manifestPath)))
		}},
		{name: "journal present", openErr: ErrIncomplete, damage: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, journalPath), "{}")
		}},
		{name: "manifest is a symlink", openErr: ErrManifest, damage: func(t *testing.T, dir string) {
			outside := filepath.Join(filepath.Dir(dir), "manifest.json")
			require.NoError(t, os.Rename(filepath.Join(dir, manifestPath), outside))
			require.NoError(t, os.Symlink(outside, filepath.Join(dir, manifestPath)))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "a")
			goldenArchive(t, dir)
			tc.damage(t, dir)
			before := treeDigest(t, parent)
			defer func() { assert.Equal(t, before, treeDigest(t, parent), "the archive or its surroundings changed") }()

			a, err := Open(dir)
			if tc.openErr != nil {
				require.ErrorIs(t, err, tc.openErr)
				return
			}
			require.NoError(t, err)
			for _, quick := range []bool{false, true} {
				if quick && !tc.quick {
					continue
				}
				var streamed []*Error
				rep, err := a.Verify(context.Background(), VerifyOptions{Quick: quick, Problem: func(e *Error) { streamed = append(streamed, e) }})
				require.ErrorIs(t, err, ErrVerify)
				t.Logf("quick=%v:\n%s", quick, problemList(rep.Problems))
				assert.Equal(t, streamed, rep.Problems)
				assert.Equal(t, int64(len(streamed)), rep.ProblemCount)
				for _, w := range tc.want {
					found := false
					for _, p := range rep.Problems {
						found = found || w.matches(p)
					}
					assert.True(t, found, "quick=%v: no problem like %+v in\n%s", quick, w, problemList(rep.Problems))
				}
			}
		})
	}
}

func problemList(ps []*Error) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.Error())
		b.WriteByte('\n')
	}
	return b.String()
}

func appendFile(t *testing.T, path, data string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(data)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func replaceIn(t *testing.T, path, old, new string) {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), old)
	write(t, path, strings.Replace(string(b), old, new, 1))
}

func truncate(t *testing.T, path string, size int64) {
	require.NoError(t, os.Truncate(path, size))
}

// compressWith compresses raw followed by fill bytes of LF as one streamed frame (so that its header
// has a window descriptor) with the given checksum setting and window.
func compressWith(t testing.TB, raw []byte, checksum bool, window int, fill ...int) []byte {
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithEncoderCRC(checksum), zstd.WithWindowSize(window), zstd.WithEncoderConcurrency(1))
	require.NoError(t, err)
	_, err = enc.Write(raw)
	require.NoError(t, err)
	require.NoError(t, enc.Flush())
	if len(fill) > 0 {
		block := bytes.Repeat([]byte("\n"), 1<<20)
		for n := 0; n < fill[0]; n += len(block) {
			_, err = enc.Write(block)
			require.NoError(t, err)
		}
	}
	require.NoError(t, enc.Close())
	return buf.Bytes()
}

// treeDigest hashes the names, modes and contents of everything under dir (symbolic links by target).
func treeDigest(t *testing.T, dir string) string {
	h := sha256.New()
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		io.WriteString(h, p+"\x00"+d.Type().String()+"\x00")
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			io.WriteString(h, target)
			return err
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			h.Write(b)
			return err
		}
		return nil
	}))
	return hex.EncodeToString(h.Sum(nil))
}

// TestVerifyReportsEveryProblem damages two chunks and the bag at once.
func TestVerifyReportsEveryProblem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	goldenArchive(t, dir)
	flipBit(t, filepath.Join(dir, chunk0), 50)
	flipBit(t, filepath.Join(dir, snap0), 50)
	write(t, filepath.Join(dir, "data/extra"), "x")
	rep, err := mustOpen(t, dir).Verify(context.Background(), VerifyOptions{})
	require.ErrorIs(t, err, ErrVerify)
	paths := map[string]bool{}
	for _, p := range rep.Problems {
		paths[p.Path] = true
	}
	assert.True(t, paths[chunk0] && paths[snap0] && paths["data/extra"], "%s", problemList(rep.Problems))
}

func TestVerifyCancelled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	goldenArchive(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, quick := range []bool{false, true} {
		_, err := mustOpen(t, dir).Verify(ctx, VerifyOptions{Quick: quick})
		require.ErrorIs(t, err, context.Canceled)
	}
}

// TestZstdBombMemory checks that a bomb is stopped with bounded memory.
func TestZstdBombMemory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	goldenArchive(t, dir)
	zb := compressWith(t, chunkRaw(t, dir, 1), true, 8<<20, 512<<20)
	require.NoError(t, os.WriteFile(filepath.Join(dir, chunk1), zb, 0o644))
	reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[1].Size, m.Chunks[1].SHA256 = int64(len(zb)), sha256hex(zb) })
	a := mustOpen(t, dir)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	it := a.Events(context.Background(), 8)
	for it.Next() {
	}
	require.ErrorIs(t, it.Err(), ErrCorrupt)
	it.Close()
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "allocated while reading a bomb")
}

// ErrFirst names the first n problems and how many more there are; Err names every problem kept.
func TestVerifyReportErrFirst(t *testing.T) {
	rep := &VerifyReport{ProblemCount: 15}
	for i := range 15 {
		rep.Problems = append(rep.Problems, &Error{Path: "data/events/x", Line: int64(i + 1), Token: int64(i), Err: ErrRecord})
	}
	err := rep.ErrFirst(10)
	require.ErrorIs(t, err, ErrVerify)
	require.ErrorIs(t, err, ErrRecord)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 12)
	assert.Equal(t, "… and 5 more (axarchive verify lists them all)", lines[11])
	assert.Len(t, strings.Split(rep.Err().Error(), "\n"), 16)
	assert.NoError(t, (&VerifyReport{}).ErrFirst(3))
}
