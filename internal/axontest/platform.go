package axontest

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"

	"google.golang.org/grpc"

	"github.com/axarchive/axarchive/internal/axonpb"
)

// Method names of the PlatformService, for Calls and the fault hooks.
const (
	MethodGetPlatformServer = "GetPlatformServer"
	MethodOpenStream        = "OpenStream"
)

// codeUnsupportedInstruction is what Axon Server acknowledges an instruction with that it does not handle.
const codeUnsupportedInstruction = "AXONIQ-1002"

// platformService is the PlatformService of control.proto as far as a client needs it to connect: AxonIQ's
// Java connector calls GetPlatformServer and opens the OpenStream instruction stream before any other
// call, and counts a connection as up only while that stream is open. The double has no event processors
// to manage, so it sends no instructions of its own; it answers as Axon Server SE 2023.2.1 does (checked
// against it by internal/javapeer's TestPlatformServiceAsRealServer).
type platformService struct {
	axonpb.UnimplementedPlatformServiceServer
	s *Server
}

// nodeName names the double in PlatformInfo and in acknowledgements, as axoniq.axonserver.name does.
func (s *Server) nodeName() string {
	_, port, _ := net.SplitHostPort(s.Addr())
	return "axontest-" + port
}

// GetPlatformServer names the double itself, with same_connection set: a client keeps the connection it
// asked on. It passes the same access and context checks as any EventStore call.
func (p platformService) GetPlatformServer(ctx context.Context, _ *axonpb.ClientIdentification) (*axonpb.PlatformInfo, error) {
	if _, err := p.s.begin(ctx, MethodGetPlatformServer); err != nil {
		return nil, err
	}
	host, portText, err := net.SplitHostPort(p.s.Addr())
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, err
	}
	return &axonpb.PlatformInfo{
		// The double serves no HTTP API: http_port stays 0. Axon Server leaves version 0 too.
		Primary:        &axonpb.NodeInfo{HostName: host, GrpcPort: int32(port), NodeName: p.s.nodeName()},
		SameConnection: true,
	}, nil
}

// OpenStream keeps the instruction stream open until the client closes it (then it ends OK, as Axon
// Server's does) or the server stops. An instruction that carries an instruction_id is acknowledged: a
// registration with success, anything else, heartbeats included (SE answers them so unless heartbeats are
// enabled on the server), with AXONIQ-1002 "Unsupported instruction".
func (p platformService) OpenStream(stream grpc.BidiStreamingServer[axonpb.PlatformInboundInstruction, axonpb.PlatformOutboundInstruction]) error {
	if _, err := p.s.begin(stream.Context(), MethodOpenStream); err != nil {
		return err
	}
	p.s.faults.enter(MethodOpenStream)
	defer p.s.faults.leave(MethodOpenStream)
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if in.GetInstructionId() == "" {
			continue
		}
		ack := &axonpb.InstructionAck{InstructionId: in.GetInstructionId(), Success: true}
		if in.GetRegister() == nil {
			ack = &axonpb.InstructionAck{InstructionId: in.GetInstructionId(), Error: &axonpb.ErrorMessage{
				Location: p.s.nodeName(), Details: []string{"Unsupported instruction"}, ErrorCode: codeUnsupportedInstruction,
			}}
		}
		out := &axonpb.PlatformOutboundInstruction{Request: &axonpb.PlatformOutboundInstruction_Ack{Ack: ack}}
		if err := stream.Send(out); err != nil {
			return err
		}
	}
}
