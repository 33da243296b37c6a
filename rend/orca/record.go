package orca

import (
	"context"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// record is the layer that holds every item and decides every write: L2
// (mnemonic, l2Client) in the two-layer modes, the chunked L1 itself with
// memcached's item semantics applied by rend (l1Record) in l1only. Every
// handler has one shape whatever the mode: take the stripes, take L1's copy
// out (cache.go; nothing to do when L1 is the record), apply the request to
// the record, then reflect the record's answer into L1 as the policy says.
//
// Each method answers the client in resp (status, CAS, message, hits) and
// returns an error only if the record failed, which says nothing of the
// key: the handler then answers through recordFailed. exp is the client's
// exptime converted by memcExp, for both layers alike.
type record interface {
	// store applies set/add/replace/cas; on OK resp.CAS is the version the
	// record gave the new item.
	store(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) error
	// modify applies append/prepend/incr/decr. If the record is not L1 and
	// the change took effect, it returns the item as the record now holds
	// it, as Hits[0] of a pooled response the caller puts back (the value
	// to put into L1); otherwise nil.
	modify(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) (*protocol.Response, error)
	// delete applies delete (and md's I and T).
	delete(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) error
	// touch applies touch.
	touch(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) error
	// read answers a read only the record can answer: a gat (it changes the
	// expiry) or a meta read that shows or changes the item's state
	// (needsRecord). Hits are appended to resp with their meta flags; a
	// status other than OK is the record's answer to the client.
	read(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) error
	// flush applies flush_all (with the client's delay).
	flush(ctx context.Context, req *protocol.Request, resp *protocol.Response) error
}

// recordFailed answers a request whose record call failed (SERVER_ERROR
// "L2 unavailable" or "L1 unavailable"). With L2 as the record the outcome
// is ambiguous: L2 may still apply the write (a stalled mnemonic applies
// what it had queued when it resumes), so keys are held until L2 settles
// (Pending.hold; nil keys: every key, for flush_all). With L1 as the
// record there is no other copy to keep consistent.
func (o *Orca) recordFailed(resp *protocol.Response, keys [][]byte, err error) error {
	if !o.pol.cache {
		return o.fail(resp, "L1", err)
	}
	if keys == nil {
		o.pending.holdEvery()
	}
	for _, k := range keys {
		o.pending.hold(k)
	}
	return o.fail(resp, "L2", err)
}
