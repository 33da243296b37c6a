package l1

import (
	"context"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Backend is a pipelined client to one memcached-protocol server
// (mcclient.Client implements it).
type Backend interface {
	protocol.Handler
	// Do sends reqs as one pipelined batch on one connection and fills
	// resps in order.
	Do(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response) error
	// Healthy reports whether at least one connection is up.
	Healthy() bool
}
