package protocol

import (
	"bytes"
	"strconv"
	"sync/atomic"
)

// AdminStats answers the stats groups that rend and mnemonic answer the way
// memcached 1.6.18 answers them for a cache that keeps no slab classes of
// its own and no per-prefix counters: "cachedump <id> <limit>" (an empty
// class: just END, with memcached's argument checks) and "detail
// on|off|dump" (on/off set *detail and answer OK; dump has no prefixes to
// report: an empty dump buffer, END). It reports whether args (what follows "stats ") named one
// of these groups; if not, resp is untouched.
func AdminStats(args []byte, resp *Response, detail *atomic.Bool) bool {
	f := bytes.Fields(args)
	if len(f) == 0 {
		return false
	}
	switch string(f[0]) {
	case "cachedump":
		resp.Status = StatusOK
		if len(f) < 3 {
			resp.ClientError("bad command line")
			return true
		}
		id, err1 := strconv.ParseUint(string(f[1]), 10, 32)
		_, err2 := strconv.ParseUint(string(f[2]), 10, 32)
		switch {
		case err1 != nil || err2 != nil:
			resp.ClientError("bad command line format")
		case id >= 64: // memcached's MAX_NUMBER_OF_SLAB_CLASSES
			resp.ClientError("Illegal slab id")
		}
		return true
	case "detail":
		resp.Status = StatusOK
		sub := ""
		if len(f) > 1 {
			sub = string(f[1])
		}
		switch sub {
		case "on", "off":
			detail.Store(sub == "on")
			resp.Message = "OK"
		case "dump":
			// The dump is a text buffer; with no prefixes counted it
			// is memcached's bare "END". The codecs write it as the
			// group's reply (binary: a stat named "detailed").
			resp.Message = "END"
		default:
			resp.ClientError("usage: stats detail on|off|dump")
		}
		return true
	}
	return false
}

// CheckMemlimit applies memcached 1.6.18's checks to "cache_memlimit <MB>"
// (args: the number, already known to be one). It returns the limit in
// bytes, or fills resp with memcached's refusal (a line of its own, in
// Message: MEMLIMIT_TOO_SMALL below 8 MB, MEMLIMIT_ADJUST_FAILED above 10^9
// "megabytes") and returns 0.
func CheckMemlimit(args []byte, resp *Response) int64 {
	mb, err := strconv.ParseUint(string(args), 10, 32)
	switch {
	case err != nil:
		resp.ClientError("bad command line format")
	case mb < 8:
		resp.Status, resp.Message = StatusNotStored, "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m"
	case mb > 1000000000:
		resp.Status, resp.Message = StatusNotStored, "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes"
	default:
		return int64(mb) << 20
	}
	return 0
}
