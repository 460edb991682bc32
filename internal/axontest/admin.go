package axontest

import (
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/axarchive/axarchive/internal/axonclient"
)

// contextAdminDesc is the one call of EE's ContextAdminService (admin.proto) the double serves in its EE
// mode: GetContexts, a stream of ContextOverview messages of which only field 1, the name, is filled. Axon
// Server SE has no such service (UNIMPLEMENTED), which is how a client tells that a server serves one
// context whatever a call names.
var contextAdminDesc = grpc.ServiceDesc{
	ServiceName: "io.axoniq.axonserver.grpc.admin.ContextAdminService",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{
		{StreamName: "GetContexts", Handler: getContexts, ServerStreams: true},
	},
	Metadata: "admin.proto",
}

func getContexts(srv any, stream grpc.ServerStream) error {
	s := srv.(*Server)
	if _, err := s.begin(stream.Context(), "GetContexts"); err != nil {
		return err
	}
	var req axonclient.RawFrame // google.protobuf.Empty
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	names := s.opts.contexts
	if names == nil {
		names = s.Contexts()
		if !slices.Contains(names, "default") {
			names = append([]string{"default"}, names...)
		}
	}
	for _, name := range names {
		overview := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), name)
		if err := stream.SendMsg(&axonclient.RawFrame{Data: overview}); err != nil {
			return err
		}
	}
	return nil
}
