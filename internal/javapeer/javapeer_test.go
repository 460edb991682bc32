package javapeer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/axarchive/axarchive/internal/axonpb"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/realserver"
)

func TestMain(m *testing.M) { os.Exit(realserver.Main(m)) }

var built struct {
	once sync.Once
	peer *Peer
	err  error
}

// peer builds the Java programs once per test binary (Maven, or the cached build of the same sources).
func peer(t *testing.T) *Peer {
	t.Helper()
	Require(t)
	built.once.Do(func() {
		start := time.Now()
		built.peer, built.err = Build(DefaultCache(), func(s string) { t.Log(s) })
		t.Logf("java programs ready in %s (%s)", time.Since(start).Round(time.Millisecond), built.peer.dirOrNone())
	})
	require.NoError(t, built.err)
	return built.peer
}

func (p *Peer) dirOrNone() string {
	if p == nil {
		return "none"
	}
	return p.Dir
}

// probeDigest is what Probe prints: a SHA-256 over each event with its token, as EventWithToken serialized
// deterministically (metadata sorted by key), computed here from the bytes a server holds.
func probeDigest(t *testing.T, events []axontest.StoredEvent) string {
	t.Helper()
	h := sha256.New()
	for _, e := range events {
		var ev axonpb.Event
		require.NoError(t, proto.Unmarshal(e.Raw, &ev))
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&axonpb.EventWithToken{Token: e.Token, Event: &ev})
		require.NoError(t, err)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

var probeLine = regexp.MustCompile(`^ok: streamed (\d+) events, last token (-?\d+), sha256 ([0-9a-f]{64})$`)

// probe runs Probe against addr and returns its count and digest.
func probe(t *testing.T, p *Peer, addr string) (count string, sum string) {
	t.Helper()
	out, err := p.Run("Probe", addr, "default")
	require.NoError(t, err)
	m := probeLine.FindStringSubmatch(LastLine(out))
	require.NotNil(t, m, "Probe's last line: %s", out)
	return m[1], m[3]
}

// copier runs Copier and returns the number of events it reports.
func copier(t *testing.T, p *Peer, args ...string) string {
	t.Helper()
	out, err := p.Run("Copier", args...)
	require.NoError(t, err)
	m := regexp.MustCompile(`^ok: \w+ events=(\d+) `).FindStringSubmatch(LastLine(out))
	require.NotNil(t, m, "Copier's last line: %s", out)
	return m[1]
}

// TestConnectorAgainstDouble runs AxonIQ's Java connector against the test double: it connects (which
// needs the PlatformService), appends edge-case events and snapshots, streams them back, and copies a
// store into another double with the connector's transactions; what the double holds is checked byte for
// byte.
func TestConnectorAgainstDouble(t *testing.T) {
	p := peer(t)
	src := axontest.NewServer(t)
	out, err := p.Run("Append", src.Addr(), "default")
	require.NoError(t, err)
	assert.Equal(t, "ok: appended 19 events, 3 snapshots, head 18", LastLine(out))
	assert.Equal(t, 19, src.EventCount("default"))
	assert.Equal(t, 3, src.SnapshotCount("default"))
	assert.Equal(t, 1, src.Calls(axontest.MethodGetPlatformServer), "the connector asks for its platform server once")
	assert.GreaterOrEqual(t, src.Calls(axontest.MethodOpenStream), 1, "the connector opens its control channel")

	// The edge values arrived as the connector sent them.
	events := src.Events("default")
	byID := map[string]*axonpb.Event{}
	for _, e := range events {
		var ev axonpb.Event
		require.NoError(t, proto.Unmarshal(e.Raw, &ev))
		byID[ev.MessageIdentifier] = &ev
	}
	require.Contains(t, byID, "")
	assert.Equal(t, int64(-1), byID[""].Timestamp)
	assert.Equal(t, int64(0), byID["nd-2"].Timestamp)
	assert.Empty(t, byID["nd-2"].Payload.GetData())
	assert.Len(t, byID["big-1"].Payload.GetData(), 1<<20)
	assert.Equal(t, "Blob", byID["big-1"].AggregateType)
	var nan, negZero int
	for _, ev := range byID {
		if d, ok := ev.MetaData["d"].GetData().(*axonpb.MetaDataValue_DoubleValue); ok {
			if math.IsNaN(d.DoubleValue) {
				nan++
			}
			if d.DoubleValue == 0 && math.Signbit(d.DoubleValue) {
				negZero++
			}
		}
	}
	assert.Equal(t, 3, nan, "NaN metadata values")
	assert.Equal(t, 3, negZero, "-0.0 metadata values")

	t.Run("probe", func(t *testing.T) {
		n, sum := probe(t, p, src.Addr())
		assert.Equal(t, "19", n)
		assert.Equal(t, probeDigest(t, events), sum, "the connector reads what the double holds")
	})
	t.Run("read", func(t *testing.T) {
		assert.Equal(t, "19", copier(t, p, "read", src.Addr()))
	})
	t.Run("copy", func(t *testing.T) {
		dst := axontest.NewServer(t)
		assert.Equal(t, "19", copier(t, p, "copy", src.Addr(), dst.Addr(), "5"))
		assert.Equal(t, events, dst.Events("default"), "the copy holds the same bytes at the same tokens")
		var sizes []int
		for _, tx := range dst.Transactions("default") {
			sizes = append(sizes, tx.Events)
		}
		assert.Equal(t, []int{5, 5, 5, 4}, sizes, "one transaction per batch")
	})
	t.Run("generated", func(t *testing.T) {
		// A store of realistic events, streamed with refills of the connector's permits and appended
		// 1,000 per transaction.
		gen := axontest.NewServer(t)
		require.NoError(t, gen.Load("default", eventgen.New(7, eventgen.Options{}).Generate(2500)))
		for _, mode := range []string{"copy", "append"} {
			dst := axontest.NewServer(t)
			assert.Equal(t, "2500", copier(t, p, mode, gen.Addr(), dst.Addr(), "1000", "500"), mode)
			assert.Equal(t, gen.Events("default"), dst.Events("default"), mode)
			assert.Len(t, dst.Transactions("default"), 3, mode)
		}
	})
}

// TestPlatformServiceAsRealServer holds the double's PlatformService to the real Axon Server: the same
// exchange gets the same answers (but for the node's name and ports), and the connector's Append, streamed
// back with Probe, gives the same events from both.
func TestPlatformServiceAsRealServer(t *testing.T) {
	real := realserver.Fresh(t)
	double := axontest.NewServer(t)
	type target struct {
		name, addr, node string
	}
	targets := []target{
		{"real", real.Addr(), fmt.Sprintf("realserver-%d", real.GRPCPort)},
		{"double", double.Addr(), "axontest-" + double.Addr()[strings.LastIndex(double.Addr(), ":")+1:]},
	}
	var transcripts []string
	for _, tg := range targets {
		transcripts = append(transcripts, platformExchange(t, tg.addr, tg.node))
	}
	assert.Equal(t, transcripts[0], transcripts[1], "the double answers as the real server does")

	p := peer(t)
	var sums []string
	for _, tg := range targets {
		_, err := p.Run("Append", tg.addr, "default")
		require.NoError(t, err, tg.name)
		n, sum := probe(t, p, tg.addr)
		assert.Equal(t, "19", n, tg.name)
		sums = append(sums, sum)
	}
	assert.Equal(t, sums[0], sums[1], "the connector reads the same events from the real server and from the double")
	assert.Equal(t, probeDigest(t, double.Events("default")), sums[1])
}

// platformExchange calls GetPlatformServer and runs an instruction stream the way a client does, and
// writes down the answers with the node's own name and address replaced, so that two servers' answers
// compare.
func platformExchange(t *testing.T, addr, node string) string {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "axoniq-context", "default")
	c := axonpb.NewPlatformServiceClient(cc)
	var w strings.Builder
	id := &axonpb.ClientIdentification{ClientId: "probe-1", ComponentName: "javapeer-test"}
	info, err := c.GetPlatformServer(ctx, id)
	require.NoError(t, err)
	host, port, _ := strings.Cut(addr, ":")
	fmt.Fprintf(&w, "platform: same_connection=%v primary_is_self=%v node_named=%v version=%d\n", info.SameConnection,
		(info.Primary.HostName == host || info.Primary.HostName == "localhost") && fmt.Sprint(info.Primary.GrpcPort) == port,
		info.Primary.NodeName == node, info.Primary.Version)

	st, err := c.OpenStream(ctx)
	require.NoError(t, err)
	send := func(in *axonpb.PlatformInboundInstruction) { require.NoError(t, st.Send(in)) }
	send(&axonpb.PlatformInboundInstruction{Request: &axonpb.PlatformInboundInstruction_Register{Register: id}})
	send(&axonpb.PlatformInboundInstruction{InstructionId: "hb-1", Request: &axonpb.PlatformInboundInstruction_Heartbeat{Heartbeat: &axonpb.Heartbeat{}}})
	send(&axonpb.PlatformInboundInstruction{InstructionId: "reg-2", Request: &axonpb.PlatformInboundInstruction_Register{Register: id}})
	send(&axonpb.PlatformInboundInstruction{InstructionId: "empty-3"})
	require.NoError(t, st.CloseSend())
	for {
		out, err := st.Recv()
		if err != nil {
			fmt.Fprintf(&w, "end: %v\n", err)
			break
		}
		ack := out.GetAck()
		if ack == nil {
			fmt.Fprintf(&w, "instruction: %v\n", out)
			continue
		}
		e := ack.GetError()
		fmt.Fprintf(&w, "ack %s success=%v error=%q/%q/%q at self=%v\n", ack.InstructionId, ack.Success,
			e.GetErrorCode(), e.GetMessage(), e.GetDetails(), e.GetLocation() == node || e == nil)
	}
	t.Logf("%s:\n%s", addr, w.String())
	return w.String()
}
