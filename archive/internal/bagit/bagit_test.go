package bagit

import (
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
