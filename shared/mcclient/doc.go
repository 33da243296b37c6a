// Package mcclient is a pipelined connection pool to one memcached-protocol
// server (a stock memcached 1.6, mnemonic, or a rend host). It speaks the meta
// protocol and implements protocol.Handler, so rend can put a backend behind
// the same interface its codecs call.
//
// # Mapping
//
// Every protocol.Request becomes one or more meta commands; no command carries
// the q flag, so every command yields exactly one reply and replies are matched
// to requests by order alone:
//
//	get/gets <k>...     mg <k> v f c t            (one per key)   VA <n> f c t / EN
//	gat/gats <e> <k>... mg <k> v f c t T<e>       (one per key)   VA <n> f c t / EN
//	touch <k> <e>       mg <k> T<e>                               HD / EN
//	set/add/replace/    ms <k> <n> F<f> T<e> M<S|E|R|A|P> c [C<cas>] [E<new>] [I]
//	append/prepend/cas                                            HD c / NS / EX / NF
//	delete <k>          md <k> [C<cas>] [I [T<e>]]                HD / NF / EX
//	incr/decr <k> <d>   ma <k> D<d> M<I|D> v c t [C<cas>] [N<e> J<init>]
//	                                                              VA <n> c t + number / NF / NS / EX
//	flush_all [delay], version, verbosity <args>, stats [args]    classic commands
//
// A key that is not a valid text key (spaces or control bytes, as binary
// protocol keys may have) is sent base64-encoded with the b flag. memcached
// limits the encoded form to 250 bytes, so such keys may be at most 186 bytes
// (Config.MaxBase64KeyLen raises that for servers that accept more, as
// mnemonic does); longer ones, empty keys and keys over 250 bytes are answered
// locally with
// StatusClientError and never sent, because memcached would answer the command
// line without swallowing the data block and the stream would desync.
//
// # Outcomes
//
// Protocol outcomes are statuses in the Response (NotFound, Exists,
// NotStored, NonNumeric, TooLarge, ClientError/ServerError with the server's
// message; ERROR, legitimate only for stats and verbosity arguments, is
// ClientError "unknown command"). memcached 1.6.18 has no ms E flag: a
// Request with NewCAS gets its CLIENT_ERROR "invalid flag". In a multi-key get
// the first error status wins and the other keys' hits are still reported.
// A reply that does not fit its command (ERROR to a meta command, EN to ms,
// a CLIENT_ERROR that memcached sends without swallowing the data block) means
// the stream is out of step: the connection is dropped, as on an I/O error.
//
// A Go error means the reply is not trustworthy: the connection
// failed, the request timed out, the caller's context ended, or the client is
// closed. A failed connection fails every request pending on it, is dropped,
// and is redialled in the background with capped exponential backoff and
// jitter; meanwhile requests go to the other connections, or fail at once with
// ErrUnavailable when none is up.
//
// # Pipelining
//
// A call (one Handle, or one Do batch, which always stays together on one
// connection) encodes its commands into its connection's write buffer under
// a lock. With Config.Writes = WriteCombine (the default) the first caller
// to find nobody writing writes the buffer with one syscall, including the
// commands of every caller who joined while it wrote (it yields once first
// when other calls are in flight, so that the callers their replies wake can
// join); the others just wait for their replies. A socket that does not take
// a write at once hands the rest to the connection's writer goroutine, so a
// caller never blocks on the socket. With WriteHandoff the writer goroutine
// does every write (one wake-up per batch). A reader goroutine per
// connection parses replies in order and completes the calls. A call waits
// on a pooled completion channel: no goroutine and, in the steady state, no
// allocation per request.
//
// # Timeouts and cancellation
//
// A call waits about RequestTimeout (ErrTimeout) or until its context ends
// (ctx.Err()), except once its reply has started to arrive: leaving then
// would let the reader write into the caller's Responses afterwards. A
// caller who leaves earlier abandons the call; its reply is read and
// discarded. There is no timer per call: waiting callers check their
// deadline at each tick of a clock shared by the Client (a tenth of
// RequestTimeout, between 1 ms and 100 ms), so a call times out between
// RequestTimeout and one tick later. Separately, a watchdog drops any
// connection that has had calls outstanding and completed none for
// RequestTimeout, which fails everything on it and bounds the reply window.
//
// # Ownership
//
// Handle and Do read the Request only until they return. Hits are copied into
// the Response (Response.AppendHit; a value larger than the read buffer is
// read straight into it, AppendHitBuffer), so they stay valid until the
// Response is Reset. Handle and Do Reset every Response they are given before filling it.
// After a Go error a Response's contents are undefined.
package mcclient
