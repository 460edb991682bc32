package archive_test

import (
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
)

// TestSpecProtobufExample: the record of SPEC.md 5.3 becomes, by the rules of 5.4, exactly the bytes
// shown there, and those bytes decode back to the same record line.
func TestSpecProtobufExample(t *testing.T) {
	b, err := os.ReadFile("../SPEC.md")
	require.NoError(t, err)
	spec := string(b)
	line := regexp.MustCompile("(?s)### 5\\.3.*?\n```\n(\\{.*?\\}\n)```").FindStringSubmatch(spec)
	require.NotNil(t, line, "the example line of 5.3")
	block := regexp.MustCompile("(?s)### 5\\.4.*?\n```\n([0-9a-f \n]+)```").FindStringSubmatch(spec)
	require.NotNil(t, block, "the hex of 5.4")
	want, err := hex.DecodeString(strings.Join(strings.Fields(block[1]), ""))
	require.NoError(t, err)

	var r archive.Record
	require.NoError(t, archive.ParseEventJSON([]byte(line[1]), &r))
	assert.Equal(t, hex.EncodeToString(want), hex.EncodeToString(codec.Encode(nil, &r)))

	var back archive.Record
	require.NoError(t, codec.Decode(want, &back))
	back.Token = r.Token
	assert.Equal(t, line[1], string(archive.AppendEventJSON(nil, &back)))
}
