// Package axonpb holds the protoc-generated Go code for the parts of Axon Server's gRPC API that axarchive
// uses. Nothing here is written by hand except this file and proto/*.proto; run `go generate
// ./internal/axonpb` (needs protoc, protoc-gen-go and protoc-gen-go-grpc on PATH) after changing a .proto.
package axonpb

//go:generate protoc -I proto --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative --go_opt=Mcommon.proto=github.com/axarchive/axarchive/internal/axonpb --go_opt=Mevent.proto=github.com/axarchive/axarchive/internal/axonpb --go_opt=Mcontrol.proto=github.com/axarchive/axarchive/internal/axonpb --go-grpc_opt=Mcommon.proto=github.com/axarchive/axarchive/internal/axonpb --go-grpc_opt=Mevent.proto=github.com/axarchive/axarchive/internal/axonpb --go-grpc_opt=Mcontrol.proto=github.com/axarchive/axarchive/internal/axonpb common.proto event.proto control.proto
