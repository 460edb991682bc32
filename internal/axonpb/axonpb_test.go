package axonpb_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/axarchive/axarchive/internal/axonpb"
)

// field is one field of a message as AXON.md section 1.3 lists it.
type field struct {
	name   string
	number protoreflect.FieldNumber
	kind   protoreflect.Kind
}

// TestMessagesMatchAXON checks the compiled descriptors against AXON.md section 1.3, message by message:
// package, message names, field names, numbers and types.
func TestMessagesMatchAXON(t *testing.T) {
	const common, event = "io.axoniq.axonserver.grpc.", "io.axoniq.axonserver.grpc.event."
	const control = "io.axoniq.axonserver.grpc.control."
	str, i64, msg, b := protoreflect.StringKind, protoreflect.Int64Kind, protoreflect.MessageKind, protoreflect.BoolKind
	want := map[string][]field{
		common + "SerializedObject": {{"type", 1, str}, {"revision", 2, str}, {"data", 3, protoreflect.BytesKind}},
		common + "MetaDataValue": {{"text_value", 1, str}, {"number_value", 2, protoreflect.Sint64Kind},
			{"boolean_value", 3, b}, {"double_value", 4, protoreflect.DoubleKind}, {"bytes_value", 5, msg}},
		common + "Confirmation": {{"success", 1, b}},
		common + "ErrorMessage": {{"message", 1, str}, {"location", 2, str}, {"details", 3, str}, {"error_code", 4, str}},
		common + "FlowControl":  {{"client_id", 2, str}, {"permits", 3, i64}},
		event + "Event": {{"message_identifier", 1, str}, {"aggregate_identifier", 2, str},
			{"aggregate_sequence_number", 3, i64}, {"aggregate_type", 4, str}, {"timestamp", 5, i64},
			{"payload", 6, msg}, {"meta_data", 7, msg}, {"snapshot", 8, b}},
		event + "EventWithToken":     {{"token", 1, i64}, {"event", 2, msg}},
		event + "PayloadDescription": {{"type", 1, str}, {"revision", 2, str}},
		event + "GetEventsRequest": {{"tracking_token", 1, i64}, {"number_of_permits", 2, i64}, {"client_id", 3, str},
			{"component_name", 4, str}, {"processor", 5, str}, {"blacklist", 6, msg}, {"force_read_from_leader", 7, b}},
		event + "GetAggregateEventsRequest": {{"aggregate_id", 1, str}, {"initial_sequence", 2, i64},
			{"allow_snapshots", 3, b}, {"max_sequence", 4, i64}, {"min_token", 5, i64}},
		event + "GetAggregateSnapshotsRequest": {{"aggregate_id", 1, str}, {"initial_sequence", 2, i64},
			{"max_sequence", 3, i64}, {"max_results", 4, protoreflect.Int32Kind}},
		event + "ReadHighestSequenceNrRequest":      {{"aggregate_id", 1, str}, {"from_sequence_nr", 3, i64}},
		event + "ReadHighestSequenceNrResponse":     {{"to_sequence_nr", 1, i64}},
		event + "TrackingToken":                     {{"token", 1, i64}},
		event + "GetFirstTokenRequest":              nil,
		event + "GetLastTokenRequest":               nil,
		event + "GetTokenAtRequest":                 {{"instant", 1, i64}},
		event + "ConsistencyMarker":                 {{"token", 1, i64}},
		event + "ConfirmationWithConsistencyMarker": {{"success", 1, b}, {"consistency_marker", 2, msg}},
		// control.proto, as AxonIQ's axon-server-api declares it (the members the double uses).
		common + "InstructionAck":    {{"instruction_id", 1, str}, {"success", 2, b}, {"error", 3, msg}},
		common + "InstructionResult": {{"instruction_id", 1, str}, {"success", 2, b}, {"error", 3, msg}},
		control + "PlatformInboundInstruction": {{"register", 1, msg}, {"heartbeat", 3, msg}, {"ack", 4, msg},
			{"result", 6, msg}, {"instruction_id", 5, str}},
		control + "PlatformOutboundInstruction": {{"node_notification", 1, msg}, {"request_reconnect", 3, msg},
			{"heartbeat", 10, msg}, {"ack", 11, msg}, {"instruction_id", 12, str}},
		control + "PlatformInfo": {{"primary", 1, msg}, {"same_connection", 2, b}},
		control + "NodeInfo": {{"host_name", 1, str}, {"grpc_port", 2, protoreflect.Int32Kind},
			{"http_port", 3, protoreflect.Int32Kind}, {"version", 4, protoreflect.Int32Kind}, {"node_name", 5, str}},
		control + "ClientIdentification": {{"client_id", 1, str}, {"component_name", 2, str}, {"tags", 3, msg},
			{"version", 4, str}},
		control + "Heartbeat":        nil,
		control + "RequestReconnect": nil,
	}
	for name, fields := range want {
		t.Run(name, func(t *testing.T) {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
			require.NoError(t, err)
			md, ok := d.(protoreflect.MessageDescriptor)
			require.True(t, ok)
			require.Equal(t, len(fields), md.Fields().Len(), "number of fields")
			for _, f := range fields {
				fd := md.Fields().ByNumber(f.number)
				require.NotNil(t, fd, "field %d", f.number)
				assert.Equal(t, f.name, string(fd.Name()), "name of field %d", f.number)
				assert.Equal(t, f.kind, fd.Kind(), "type of field %d", f.number)
			}
		})
	}
	// meta_data is map<string, MetaDataValue>; the oneof of MetaDataValue is named data; details and
	// blacklist are repeated.
	ev := (&axonpb.Event{}).ProtoReflect().Descriptor()
	meta := ev.Fields().ByName("meta_data")
	require.True(t, meta.IsMap())
	assert.Equal(t, protoreflect.StringKind, meta.MapKey().Kind())
	assert.Equal(t, protoreflect.FullName(common+"MetaDataValue"), meta.MapValue().Message().FullName())
	assert.Equal(t, protoreflect.FullName(common+"SerializedObject"), ev.Fields().ByName("payload").Message().FullName())
	assert.Equal(t, protoreflect.Name("data"), (&axonpb.MetaDataValue{}).ProtoReflect().Descriptor().Oneofs().Get(0).Name())
	assert.True(t, (&axonpb.ErrorMessage{}).ProtoReflect().Descriptor().Fields().ByName("details").IsList())
	assert.True(t, (&axonpb.GetEventsRequest{}).ProtoReflect().Descriptor().Fields().ByName("blacklist").IsList())
	assert.True(t, (&axonpb.FlowControl{}).ProtoReflect().Descriptor().ReservedRanges().Has(1))
}

// TestServiceMatchesAXON checks the EventStore service against AXON.md section 1.2.
func TestServiceMatchesAXON(t *testing.T) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName("io.axoniq.axonserver.grpc.event.EventStore")
	require.NoError(t, err)
	sd := d.(protoreflect.ServiceDescriptor)
	const common, event = "io.axoniq.axonserver.grpc.", "io.axoniq.axonserver.grpc.event."
	want := []struct {
		name, in, out              string
		clientStream, serverStream bool
	}{
		{"AppendEvent", event + "Event", event + "ConfirmationWithConsistencyMarker", true, false},
		{"AppendSnapshot", event + "Event", common + "Confirmation", false, false},
		{"ListAggregateEvents", event + "GetAggregateEventsRequest", event + "Event", false, true},
		{"ListAggregateSnapshots", event + "GetAggregateSnapshotsRequest", event + "Event", false, true},
		{"ListEvents", event + "GetEventsRequest", event + "EventWithToken", true, true},
		{"ReadHighestSequenceNr", event + "ReadHighestSequenceNrRequest", event + "ReadHighestSequenceNrResponse", false, false},
		{"GetFirstToken", event + "GetFirstTokenRequest", event + "TrackingToken", false, false},
		{"GetLastToken", event + "GetLastTokenRequest", event + "TrackingToken", false, false},
		{"GetTokenAt", event + "GetTokenAtRequest", event + "TrackingToken", false, false},
	}
	require.Equal(t, len(want), sd.Methods().Len())
	for _, m := range want {
		md := sd.Methods().ByName(protoreflect.Name(m.name))
		require.NotNil(t, md, m.name)
		assert.Equal(t, m.in, string(md.Input().FullName()), m.name)
		assert.Equal(t, m.out, string(md.Output().FullName()), m.name)
		assert.Equal(t, m.clientStream, md.IsStreamingClient(), m.name)
		assert.Equal(t, m.serverStream, md.IsStreamingServer(), m.name)
	}
	assert.Equal(t, "/io.axoniq.axonserver.grpc.event.EventStore/ListEvents", axonpb.EventStore_ListEvents_FullMethodName)
}

// TestGeneratedCodeUpToDate runs the go:generate command of gen.go into a temporary directory and compares
// the result with the committed files. It needs protoc, protoc-gen-go and protoc-gen-go-grpc of the
// versions named in the committed files' headers, and is skipped without them.
func TestGeneratedCodeUpToDate(t *testing.T) {
	gen, err := os.ReadFile("gen.go")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^//go:generate (.*)$`).FindSubmatch(gen)
	require.NotNil(t, m, "gen.go has no go:generate line")
	args := strings.Fields(string(m[1]))
	require.Equal(t, "protoc", args[0])

	header, err := os.ReadFile("event_grpc.pb.go")
	require.NoError(t, err)
	goHeader, err := os.ReadFile("event.pb.go")
	require.NoError(t, err)
	wantVersion := func(src []byte, re string) string {
		m := regexp.MustCompile(re).FindSubmatch(src)
		require.NotNil(t, m, "no version %s in a generated header", re)
		return string(m[1])
	}
	tools := []struct{ bin, want string }{
		{"protoc", strings.TrimPrefix(wantVersion(goHeader, `// \tprotoc +v(\S+)`), "3.")},
		{"protoc-gen-go", wantVersion(goHeader, `// \tprotoc-gen-go (v\S+)`)},
		{"protoc-gen-go-grpc", strings.TrimPrefix(wantVersion(header, `// - protoc-gen-go-grpc (v\S+)`), "v")},
	}
	path := os.Getenv("PATH")
	if gobin, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		path = filepath.Join(strings.TrimSpace(string(gobin)), "bin") + string(os.PathListSeparator) + path
	}
	for _, tool := range tools {
		bin, err := lookPath(path, tool.bin)
		if err != nil {
			t.Skipf("%s not installed (see README's development section)", tool.bin)
		}
		out, err := exec.Command(bin, "--version").Output()
		require.NoError(t, err, tool.bin)
		if !strings.HasSuffix(strings.TrimSpace(string(out)), tool.want) {
			t.Skipf("%s is %q, the committed code was generated with %s", tool.bin, strings.TrimSpace(string(out)), tool.want)
		}
	}

	dir := t.TempDir()
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--go_out="), strings.HasPrefix(a, "--go-grpc_out="):
			args[i] = a[:strings.Index(a, "=")+1] + dir
		}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "PATH="+path)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	generated, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	require.Len(t, generated, 5, "common, event and control code, the latter two with their services")
	for _, file := range generated {
		name := filepath.Base(file)
		got, err := os.ReadFile(file)
		require.NoError(t, err)
		committed, err := os.ReadFile(name)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(committed, got), "%s differs from what go generate ./internal/axonpb produces", name)
	}
}

func lookPath(path, name string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}
