// Package textproto is the server side of memcached's text protocol and its
// meta commands, byte for byte as memcached 1.6.18 behaves: the same reply
// words, the same check order (the first failing check picks the word),
// the same treatment of noreply, bad data blocks, long lines and odd
// numbers. Differential tests run every malformed case against a real
// memcached.
//
// # Wire format
//
//	<command line>\r\n            a line ends at '\n'; one '\r' before it is
//	[<data block>\r\n]            dropped; tokens are split on ' ' only
//
//	get|gets|bget <key>+          gat|gats <exptime> <key>+
//	set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply]
//	cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]
//	incr|decr <key> <delta> [noreply]     touch <key> <exptime> [noreply]
//	delete <key> [0] [noreply]            flush_all [delay] [noreply]
//	verbosity <level> [noreply]           stats [group...]  version  quit
//	mg|md|ma <key> <flag>*        ms <key> <bytes> <flag>*   mn   me <key> [b]
//
// # Requests
//
// ReadRequest fills a protocol.Request; Request.Opcode is 0 for classic
// commands and the meta letter ('g', 's', 'd', 'a', 'n', 'e') for meta ones.
//
//	get, bget / gets        CmdGet / CmdGets, Want value+flags (+CAS)
//	gat / gats              CmdGat / CmdGats, Exptime, HasExptime
//	set ... cas             CmdSet ... CmdCas, Flags, Exptime, Value (CAS)
//	incr / decr             CmdIncr / CmdDecr, Delta
//	touch                   CmdTouch, Exptime
//	delete                  CmdDelete
//	flush_all               CmdFlushAll, Exptime = delay (0 or less: now)
//	stats / verbosity       CmdStats / CmdVerbosity, Args (group / level)
//	version / quit          CmdVersion / CmdQuit
//	noreply                 Quiet: no reply at all, errors included
//	mg                      CmdGet; with T CmdGat (Exptime); N Vivify (Exptime
//	                        = N's TTL unless T is given); v f c t k s set Want
//	ms                      CmdSet; M E/A/P/R/S: add/append/prepend/replace/
//	                        set; C on set or replace: CmdCas (C on append or
//	                        prepend: CAS precondition; on add: ignored, as
//	                        memcached ignores it); F Flags, T Exptime, I
//	                        Invalidate (with CmdCas only)
//	md                      CmdDelete; C CAS, I Invalidate, T Exptime
//	ma                      CmdIncr, CmdDecr with M D/-; D Delta (default 1),
//	                        J Initial, N Vivify (+TTL), T Exptime, C CAS
//	mn                      CmdNoop
//	me                      CmdGet (all of Want)
//
// Numbers are read with memcached's strtol semantics, quirks included
// ("+5" and "-0" are numbers; exptime and lengths are truncated to 32 bits,
// so "4294967297" means 1; see num.go). Exptime is passed on as memcached
// interprets it; use protocol.AbsExpiry.
//
// A set (text set, or ms in any mode) whose block exceeds MaxItemSize is
// swallowed and comes back as a CmdDelete of its key: memcached unlinks the
// old item so a failed set never leaves the previous value readable. The
// codec answers it "SERVER_ERROR object too large for cache" whatever the
// handler reports. Too-large add/replace/append/prepend/cas are answered by
// the codec alone (ErrReplied).
//
// # Replies
//
// WriteResponse maps Response.Status per command: StatusOK is STORED,
// DELETED, TOUCHED, OK, the incr number, VALUE...END, HD/VA; NotStored is
// NOT_STORED / NS, Exists EXISTS / EX, NotFound NOT_FOUND / NF / EN (a read
// with no hits is END / EN whatever its status), NonNumeric and TooLarge
// memcached's fixed messages, ClientError and ServerError "CLIENT_ERROR " /
// "SERVER_ERROR " + Message. For stats, StatusNotFound (unknown group) is
// "ERROR" and an empty "stats reset" reply is "RESET".
//
// Meta return flags are printed in the order the client sent them, as
// memcached prints them. Request.Meta.Flags holds that order (4-bit codes,
// see rfS), Meta.Opaque the O token, Meta.Base64 the b flag (keys are
// decoded into Keys and re-encoded on output). What q hides differs by
// command: mg hides EN, ms and md hide HD, ma hides HD and VA; errors are
// always printed. For ma's t flag the handler may put the item in
// resp.Hits[0] (its Exptime is used); otherwise t prints -1.
//
// # Limits
//
// Keys longer than MaxKeyLen are "CLIENT_ERROR bad command line format";
// a get with more than MaxKeys keys (default: as many as fit the line) is
// "SERVER_ERROR out of memory writing get response". A data length is
// checked against MaxItemSize before any buffer exists, and the buffer
// then grows as the bytes arrive; with SetBudget each growth is charged to
// a process-wide budget first, and a block it refuses is swallowed and
// answered "SERVER_ERROR out of memory storing object" (a set, or any ms,
// unlinks the key first, as memcached does when it cannot allocate). A
// line longer than 16 KiB (memcached's read buffer) closes the connection
// (ErrClose) unless it is a get/gets line, which may reach MaxLineLen
// (default 8 MiB; memcached: unbounded). What such a line holds beyond
// 16 KiB is charged to the budget too; one it cannot hold is answered
// "SERVER_ERROR out of memory reading request" and closes the connection.
//
// # Long gets
//
// A get/gets/gat/gats line is returned as a run of requests of at most
// SetGroupKeys keys each (default DefaultGroupKeys), repeated keys once
// per group; WriteResponse writes every named key's hit in line order and
// END after the last group, and Pending reports that the rest of a line is
// held (see getstream.go). A server that answers and writes each group
// before reading the next holds one group's hits at a time.
//
// # HTTP
//
// An unknown command whose last token (the 23rd of longer lines) starts
// with "HTTP/" closes the connection without a reply (ErrClose), so a
// browser's request body is never run as commands: memcached's rule,
// which spares commands shorter than two bytes, those starting with
// g s a c i d t, two-byte m commands and the other names memcached knows.

// # Deviations from memcached 1.6.18
//
// Deliberate, because the outcome in memcached depends on timing or on
// item internals the protocol model does not carry:
//   - memcached closes a non-get line when more than 2 KiB arrive without a
//     newline, but handles up to 16 KiB that arrive at once; the codec
//     always does the latter (and allows get/gets beyond, as memcached).
//   - a key over 250 bytes in a multi-get makes memcached drop earlier
//     pipelined replies still unsent; the codec drops nothing.
//   - mg h and l always print 0 (memcached: fetched-before, last access).
//     R is checked and ignored. With both N and T, T's TTL is used.
//   - mg/ms k with b: memcached re-encodes the key if the stored item was
//     stored with b; the codec if this request used b.
//   - me prints la=0 fetch=no cls=1 and size is the value length.
//   - a meta request with an over-long opaque is refused before it runs;
//     memcached reports it after applying T (mg) or the arithmetic (ma).
//   - ma q with N hides the reply of a counter it creates; memcached shows it.
//   - a request that closes the connection (an HTTP line, an over-long
//     line) lets the replies to the requests before it go out; memcached
//     drops replies still unsent when it closes.
//
// Flags that memcached 1.6.18 rejects are rejected ("CLIENT_ERROR invalid
// flag"): E (explicit CAS) on every meta command, S on ms, x on md. So
// Request.NewCAS is never set by this codec.
//
// # Ownership
//
// Keys, Args, Meta.Opaque and Value are copied into the Request (its arena
// and value buffer) before the codec reads further; they are valid until
// the next ReadRequest with that Request. The codec keeps no reference into
// the bufio.Reader across calls.
package textproto
