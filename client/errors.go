package client

import (
	"errors"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Errors a call can return. Protocol outcomes are sentinels to compare with
// errors.Is; failures to reach enough servers wrap ErrUnavailable.
var (
	// ErrCacheMiss: the key was not found (get, gat, delete, touch,
	// incr/decr, cas on a missing key).
	ErrCacheMiss = errors.New("moneta: cache miss")
	// ErrNotStored: add of an existing key, replace/append/prepend of a
	// missing key.
	ErrNotStored = errors.New("moneta: item not stored")
	// ErrCASConflict: the item changed since it was read (cas).
	ErrCASConflict = errors.New("moneta: compare-and-swap conflict")
	// ErrNonNumeric: incr/decr of a value that is not a decimal number.
	ErrNonNumeric = errors.New("moneta: value is not a number")
	// ErrTooLarge: the value exceeds the server's item size limit.
	ErrTooLarge = errors.New("moneta: item too large")
	// ErrMalformedKey: empty, containing spaces or control characters, or
	// longer than 250 bytes (with the prefix) while HashLongKeys is off.
	ErrMalformedKey = errors.New("moneta: malformed key")
	// ErrUnavailable: too few zones answered (a write below its policy, a
	// CAS whose zone is down). The error wraps the first failure seen.
	ErrUnavailable = errors.New("moneta: not enough servers answered")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("moneta: client closed")
)

// ServerError is a CLIENT_ERROR or SERVER_ERROR answer.
type ServerError struct {
	// Client is true for CLIENT_ERROR (the server refused the request).
	Client  bool
	Message string
}

func (e *ServerError) Error() string {
	if e.Client {
		return "moneta: client error: " + e.Message
	}
	return "moneta: server error: " + e.Message
}

// statusErr maps a protocol outcome to the error a caller sees.
func statusErr(resp *protocol.Response) error {
	switch resp.Status {
	case protocol.StatusOK:
		return nil
	case protocol.StatusNotStored:
		return ErrNotStored
	case protocol.StatusExists:
		return ErrCASConflict
	case protocol.StatusNotFound:
		return ErrCacheMiss
	case protocol.StatusNonNumeric:
		return ErrNonNumeric
	case protocol.StatusTooLarge:
		return ErrTooLarge
	case protocol.StatusClientError:
		return &ServerError{Client: true, Message: resp.Message}
	default:
		return &ServerError{Message: resp.Message}
	}
}
