package l1

import (
	"context"
	"time"

	"github.com/moneta-cache/moneta/rend/chunk"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// HeaderState reads key's header with memcached's own fetched bit and last
// access of the header item (one mg). bump says whether the read is a
// fetch (a client's mg) or must leave both alone (rend's own look before
// a write, or an mg u). ok is false on a miss; the header's Inline aliases
// the returned response, which the caller releases with Pool.PutResp.
func (l *Client) HeaderState(ctx context.Context, key []byte, bump bool) (HeaderHit, *protocol.Response, bool, error) {
	req := l.pool.Req()
	defer l.pool.PutReq(req)
	stateRequest(req, key, bump)
	resp := l.pool.Resp()
	if err := l.Handle(ctx, req, resp); err != nil {
		l.pool.PutResp(resp)
		return HeaderHit{}, nil, false, err
	}
	hh, ok, err := l.stateOf(resp)
	if err != nil {
		l.pool.PutResp(resp)
		return HeaderHit{}, nil, false, err
	}
	return hh, resp, ok, nil
}

// stateRequest makes req the mg of HeaderState.
func stateRequest(req *protocol.Request, key []byte, bump bool) {
	req.Command = protocol.CmdGet
	req.Mods.Meta, req.Mods.NoBump = true, !bump
	req.Want = protocol.WantValue | protocol.WantFlags | protocol.WantCAS | protocol.WantFetched | protocol.WantAccess
	AddKey(req, key)
}

// stateOf decodes the answer to a stateRequest.
func (l *Client) stateOf(resp *protocol.Response) (HeaderHit, bool, error) {
	if resp.Status != protocol.StatusOK {
		l.counters.L1Errors.Add(1)
		return HeaderHit{}, false, errStatus
	}
	if len(resp.Hits) == 0 {
		return HeaderHit{}, false, nil
	}
	hit := &resp.Hits[0]
	h, err := chunk.Decode(hit.Value, l.maxItem)
	if err != nil {
		l.counters.BadHeaders.Add(1)
		return HeaderHit{}, false, nil
	}
	if h.Exptime != 0 && h.Exptime <= time.Now().Unix() {
		return HeaderHit{}, false, nil
	}
	return HeaderHit{HeaderCAS: hit.CAS, Header: h, Fetched: hit.Fetched, Accessed: hit.Accessed}, true, nil
}

// DeleteWithState is Delete that also returns what HeaderState (without a
// fetch) would have said just before, in the same round trip (one
// pipelined batch): for a caller that takes a copy out but must keep what
// L1 alone knew of it. hh.Header.Inline is nil.
func (l *Client) DeleteWithState(ctx context.Context, key []byte) (had bool, hh HeaderHit, found bool, err error) {
	b := l.pool.batch()
	defer b.release()
	stateRequest(b.add(protocol.CmdGet), key, false)
	AddKey(b.add(protocol.CmdDelete), key)
	if err := l.do(ctx, b); err != nil {
		return false, HeaderHit{}, false, err
	}
	hh, found, _ = l.stateOf(b.resps[0]) // a bad answer there only loses the state
	hh.Header.Inline = nil
	switch b.resps[1].Status {
	case protocol.StatusOK:
		return true, hh, found, nil
	case protocol.StatusNotFound:
		return false, hh, found, nil
	}
	l.counters.L1Errors.Add(1)
	return false, hh, found, errStatus
}

// DeleteKeysWithState is DeleteWithState for several keys in one pipelined
// batch: had[i] and, where found[i], hhs[i] for keys[i] (all len(keys)).
// Any failure of a delete is an error (nothing is known of any key then).
func (l *Client) DeleteKeysWithState(ctx context.Context, keys [][]byte, had []bool, hhs []HeaderHit, found []bool) error {
	b := l.pool.batch()
	defer b.release()
	for _, k := range keys {
		stateRequest(b.add(protocol.CmdGet), k, false)
		AddKey(b.add(protocol.CmdDelete), k)
	}
	if err := l.do(ctx, b); err != nil {
		return err
	}
	for i := range keys {
		hhs[i], found[i], _ = l.stateOf(b.resps[2*i]) // a bad answer there only loses the state
		hhs[i].Header.Inline = nil
		var err error
		if had[i], err = l.deleted(b.resps[2*i+1].Status); err != nil {
			return err
		}
	}
	return nil
}
