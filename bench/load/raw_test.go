package load

import (
	"context"
	"net"
	"time"

	"github.com/moneta-cache/moneta/shared/addr"
)

func newRawConn(a string) (net.Conn, error) {
	return addr.Dial(context.Background(), a, time.Second)
}
