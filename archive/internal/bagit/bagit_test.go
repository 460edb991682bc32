package bagit

import (
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestManifestRoundTrip(t *testing.T) {
	sum := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	b := Manifest([]Entry{{Sum: sum, Path: "data/b"}, {Sum: sum, Path: "data/a"}})
	assert.Equal(t, sum+"  data/a\n"+sum+"  data/b\n", string(b))
	entries, problems := ParseManifest(b)
	require.Empty(t, problems)
	assert.Equal(t, []Entry{{Line: 1, Sum: sum, Path: "data/a"}, {Line: 2, Sum: sum, Path: "data/b"}}, entries)

	entries, problems = ParseManifest([]byte("ABC  x\n\n" + sum + " *data/c\r\n"))
	assert.Equal(t, []Entry{{Line: 3, Sum: sum, Path: "data/c"}}, entries)
	assert.Equal(t, []Problem{{1, `not a "sha256  path" line: "ABC  x"`}, {2, "empty line"}}, problems)
}

func TestInfo(t *testing.T) {
	b := Info([]Field{{Label: Agent, Value: "a\tb\n"}, {Label: Date, Value: "2026-12-06"}})
	assert.Equal(t, "Bag-Software-Agent: a b\nBagging-Date: 2026-12-06\n", string(b))
	fields, problems := ParseInfo([]byte("A: 1\n  more\nno label\n\n: x\nB:2\n"))
	assert.Equal(t, []Field{{Label: "A", Value: "1 more", Line: 1}, {Label: "B", Value: "2", Line: 6}}, fields)
	assert.Equal(t, []Problem{{3, `not a "Label: value" line`}, {4, "empty line"}, {5, `not a "Label: value" line`}}, problems)
	_, problems = ParseInfo([]byte(" orphan\n"))
	assert.Equal(t, []Problem{{1, "continuation line without a label"}}, problems)
}

func TestChecks(t *testing.T) {
	assert.True(t, ValidDeclaration([]byte(Content)))
	assert.True(t, ValidDeclaration([]byte("BagIt-Version: 1.0\r\nTag-File-Character-Encoding: UTF-8\r\n")))
	assert.False(t, ValidDeclaration([]byte("BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n")))
	assert.True(t, ValidDate("2026-12-06"))
	assert.False(t, ValidDate("2026-1-06"))
	assert.False(t, ValidDate("2026-12-0x"))
	assert.True(t, IsHex("09afAF"))
	assert.False(t, IsHex("g"))
	tags := TagManifest([]File{{Path: "b", Data: nil}})
	assert.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  b\n", string(tags))
}

// Hostile tag files cost memory and time in proportion to their size: continuation lines are joined
// without copying the value again for each (a 1 MiB file of them took minutes when they were), and a
// file of bad lines returns MaxProblems problems and a count of the rest.
func TestHostileTagFiles(t *testing.T) {
	flood := "Label: v\n" + strings.Repeat(" x\n", 20000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fields, problems := ParseInfo([]byte(flood))
	runtime.ReadMemStats(&after)
	require.Empty(t, problems)
	require.Len(t, fields, 1)
	assert.Equal(t, "v"+strings.Repeat(" x", 20000), fields[0].Value)
	// Joined by concatenation, the value would be copied 20,000 times: some 400 MB.
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(4<<20), "bytes allocated parsing %d bytes", len(flood))

	_, problems = ParseInfo([]byte(strings.Repeat("no label\n", 1000)))
	require.Len(t, problems, MaxProblems+1)
	assert.Equal(t, Problem{100, `not a "Label: value" line`}, problems[MaxProblems-1])
	assert.Equal(t, Problem{0, "and 900 more lines that do not parse"}, problems[MaxProblems])

	_, problems = ParseManifest([]byte(strings.Repeat("\n", 250)))
	require.Len(t, problems, MaxProblems+1)
	assert.Equal(t, Problem{0, "and 150 more lines that do not parse"}, problems[MaxProblems])
}

// FuzzParseInfo: bag-info.txt as read from an archive. Never a panic; the problems bounded; the fields
// it accepts written by Info and parsed again are the same fields, values made to fit on their line.
func FuzzParseInfo(f *testing.F) {
	f.Add([]byte("Bag-Software-Agent: axarchive\nBagging-Date: 2026-12-06\nPayload-Oxum: 12.3\n"))
	f.Add([]byte("A: 1\n  more\r\nno label\n\n: x\nB:2"))
	f.Add([]byte(" orphan\n\tcontinued\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fields, problems := ParseInfo(b)
		checkProblems(t, problems)
		again, problems := ParseInfo(Info(fields))
		require.Empty(t, problems, "Info of %q", fields)
		require.Len(t, again, len(fields))
		for i, f := range fields {
			assert.Equal(t, f.Label, again[i].Label)
			assert.Equal(t, value(f.Value), again[i].Value)
		}
	})
}

// FuzzParseManifest: manifest-sha256.txt and tagmanifest-sha256.txt as read from an archive. Never a
// panic; the problems bounded; every entry a lower-case SHA-256 and a path; entries whose paths are not
// ambiguous in sha256sum's syntax written by Manifest and parsed again are the same entries.
func FuzzParseManifest(f *testing.F) {
	sum := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	f.Add([]byte(sum + "  data/manifest.json\n" + sum + "  data/events/00000000000000000000.jsonl.zst\n"))
	f.Add([]byte(strings.ToUpper(sum) + " *data/x\r\n\n" + sum + "\tdata/y"))
	f.Add([]byte("ABC  x\n" + sum + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, problems := ParseManifest(b)
		checkProblems(t, problems)
		var plain []Entry
		for _, e := range entries {
			require.Len(t, e.Sum, 64)
			require.True(t, IsHex(e.Sum) && strings.ToLower(e.Sum) == e.Sum, e.Sum)
			require.NotEmpty(t, e.Path)
			require.Positive(t, e.Line)
			if !strings.ContainsAny(e.Path[:1], "* \t") && !strings.HasSuffix(e.Path, "\r") {
				plain = append(plain, Entry{Sum: e.Sum, Path: e.Path})
			}
		}
		again, problems := ParseManifest(Manifest(plain))
		require.Empty(t, problems)
		for i := range again {
			again[i].Line = 0
		}
		slices.SortStableFunc(plain, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
		assert.Equal(t, plain, again)
	})
}

func checkProblems(t *testing.T, problems []Problem) {
	t.Helper()
	require.LessOrEqual(t, len(problems), MaxProblems+1)
	prev := int64(0)
	for i, p := range problems {
		if i == MaxProblems {
			require.Zero(t, p.Line)
			break
		}
		require.Greater(t, p.Line, prev, "problems in line order")
		prev = p.Line
	}
}
