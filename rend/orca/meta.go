package orca

import (
	"context"
	"time"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Meta state in the two-layer modes (issue 10 item 7; the item model and
// who stores which bit are in shared/item's package doc).
//
// L2 is the record and keeps each item's meta state (stale, W token sent,
// fetched, last access). L1 holds plain copies only, so an L1 hit is always
// an item without state, and rend keeps it that way:
//   - an item with state never enters L1: a read whose L2 hit carries W, X or
//     Z is not filled (and its L1 copy, if any, is taken out), an ms I does
//     not put its value into L1, md I deletes L1's copy as delete does;
//   - a read whose answer depends on the state, or that changes it (mg with
//     N, R, h or l), goes to L2 directly (recordRead), never to L1.
// A plain mg that misses L1 reads L2 and shows the W, X, Z it answered; a
// classic get, gets, gat or gats reads L2 with mnemonic's G flag
// (protocol.Mods.ClassicRead), so it leaves a stale item's W for the next
// mg, as memcached does.

// needsRecord reports whether req is a read only the record can answer
// (an L1 copy has no state to show or change).
func needsRecord(req *protocol.Request) bool {
	m := &req.Mods
	return m.Meta && (req.Vivify || m.HasRecache ||
		req.Want&(protocol.WantFetched|protocol.WantAccess) != 0)
}

// anyNeedsRecord reports whether a batch of gets holds one that the record
// must answer (recordRead); the batch is then served request by request.
func (o *Orca) anyNeedsRecord(reqs []*protocol.Request) bool {
	for _, r := range reqs {
		// Any mg alone: lookup reads a batch as classic gets, which take
		// no W token from L2 (and in l1only mode an mg may need item).
		if needsRecord(r) || r.Mods.Meta {
			return true
		}
	}
	return false
}

// anyState reports whether a hit shows meta state (l1only: l1.MarkState).
func anyState(resp *protocol.Response) bool {
	for i := range resp.Hits {
		if hasMetaState(&resp.Hits[i]) {
			return true
		}
	}
	return false
}

// hasMetaState reports whether an L2 hit shows state that L1 cannot keep.
func hasMetaState(h *protocol.Hit) bool {
	return h.Win || h.Stale || h.Won
}

// recordRead serves a read that only the record can answer (needsRecord;
// in l1only also an mg that found state and every meta gat), holding the
// keys' stripes exclusively since it may change the record's item (a W
// token, a created placeholder, the fetched bit) and L1's copy, which is
// then brought in line (reflectRead).
func (o *Orca) recordRead(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdGet.Add(uint64(len(req.Keys)))
	stripes := o.lockKeys(make([]int, 0, len(req.Keys)), req.Keys)
	defer o.locks.unlock(stripes)
	exp := memcExp(req.Exptime, time.Now())
	if err := o.rec.read(ctx, req, resp, exp); err != nil {
		return o.recordFailed(resp, req.Keys, err)
	}
	if resp.Status != protocol.StatusOK {
		return nil
	}
	o.reflectRead(ctx, req, resp)
	l1.SortHits(resp)
	o.stats.GetHits.Add(uint64(len(resp.Hits)))
	o.stats.GetMisses.Add(uint64(len(req.Keys) - len(resp.Hits)))
	return nil
}
