package orca

import (
	"context"
	"os"
	"strconv"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// statsReply answers "stats" from rend's own counters; curr_items and
// total_items come from the system of record (L2, or L1 in l1only mode,
// where they count chunk items too). "stats reset" is accepted and resets
// nothing (the counters are cumulative, for the metrics endpoint); other
// groups are unknown, answered ERROR.
func (o *Orca) statsReply(ctx context.Context, req *protocol.Request, resp *protocol.Response) {
	switch string(req.Args) {
	case "":
	case "reset":
		return
	case "slabs", "items":
		// L1's own: where the hot set's memory goes (rend's header and
		// chunk items, by slab class).
		o.l1Stats(ctx, req, resp)
		return
	default:
		if !protocol.AdminStats(req.Args, resp, &o.stats.Detail) {
			resp.Status = protocol.StatusNotFound
		}
		return
	}
	now := time.Now()
	s := func(name, v string) { resp.Stats = append(resp.Stats, protocol.Stat{Name: name, Value: v}) }
	s("pid", strconv.Itoa(os.Getpid()))
	s("uptime", strconv.FormatInt(int64(now.Sub(o.cfg.Started)/time.Second), 10))
	s("time", strconv.FormatInt(now.Unix(), 10))
	s("version", o.cfg.Version)
	s("pointer_size", "64")
	s("mode", o.pol.name)
	resp.Stats = o.stats.AppendStats(resp.Stats)
	items, total := "0", "0"
	var rec Backend = o.l1.Backend()
	if o.l2 != nil {
		rec = o.l2.Backend()
	}
	sreq, sresp := o.pool.Req(), o.pool.Resp()
	sreq.Command = protocol.CmdStats
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if err := rec.Handle(sctx, sreq, sresp); err == nil {
		for _, st := range sresp.Stats {
			switch st.Name {
			case "curr_items":
				items = st.Value
			case "total_items":
				total = st.Value
			}
		}
	}
	cancel()
	o.pool.PutReq(sreq)
	o.pool.PutResp(sresp)
	s("curr_items", items)
	s("total_items", total)
	resp.Stats = pendingFields.AppendStats(resp.Stats, "", o.pending)
	s("l1_healthy", boolStat(o.l1.Backend().Healthy()))
	if o.l2 != nil {
		s("l2_healthy", boolStat(o.l2.Backend().Healthy()))
	}
	s("chunk_size", strconv.Itoa(o.cfg.ChunkSize))
	s("item_size_max", strconv.Itoa(o.cfg.MaxItemSize))
}

// memlimit serves cache_memlimit: the memory rend caches in is L1's, so
// L1 gets the new limit (after memcached's own checks, made here so that a
// refusal does not depend on L1 being up).
func (o *Orca) memlimit(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	if protocol.CheckMemlimit(req.Args, resp) == 0 {
		return nil
	}
	r, lresp := o.pool.Req(), o.pool.Resp()
	defer o.pool.PutReq(r)
	defer o.pool.PutResp(lresp)
	r.Command, r.Args = protocol.CmdCacheMemlimit, req.Args
	if err := o.l1.Handle(ctx, r, lresp); err != nil {
		return o.fail(resp, "L1", err)
	}
	resp.Status, resp.Message = lresp.Status, lresp.Message
	return nil
}

// l1Stats answers a stats group with L1's reply to the same group.
func (o *Orca) l1Stats(ctx context.Context, req *protocol.Request, resp *protocol.Response) {
	sreq, sresp := o.pool.Req(), o.pool.Resp()
	defer o.pool.PutReq(sreq)
	defer o.pool.PutResp(sresp)
	sreq.Command, sreq.Args = protocol.CmdStats, req.Args
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := o.l1.Backend().Handle(sctx, sreq, sresp); err != nil || sresp.Status != protocol.StatusOK {
		resp.ServerError("L1 unavailable")
		return
	}
	resp.Stats = append(resp.Stats, sresp.Stats...)
}

func boolStat(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
