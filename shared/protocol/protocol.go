// Package protocol is the protocol-neutral model of a memcached request and its
// outcome. The text, meta and binary codecs (packages textproto and binproto)
// parse client bytes into a Request and encode a Response; handlers (the
// in-memory reference store, mnemonic's RocksDB store, rend's orchestrator)
// only ever see this model.
//
// Ownership: every []byte in a Request points into memory owned by the Request
// (its arena) and is valid until the Request is Reset or reused for the next
// request. A Handler that keeps a key or value beyond Handle must copy it.
// Every []byte in a Response is owned by the Response and is valid until its
// next Reset; Response.AppendHit copies the value it is given. A server may
// send a large reply's values to the client straight from the Response
// (RefMinReply), so a handler must not change them after Handle returns.
package protocol

import (
	"context"
	"errors"
	"strconv"
	"time"
	"unsafe"
)

// Command is what a request asks for, whichever protocol carried it.
type Command uint8

const (
	CmdNone  Command = iota
	CmdGet           // get, binary get/getq/getk/getkq, mg
	CmdGets          // gets (get that reports CAS)
	CmdGat           // gat, binary gat/gatq/gatk/gatkq, mg with T
	CmdGats          // gats
	CmdTouch         // touch, binary touch
	CmdSet
	CmdAdd
	CmdReplace
	CmdAppend
	CmdPrepend
	CmdCas // set only if Request.CAS matches
	CmdDelete
	CmdIncr
	CmdDecr
	CmdFlushAll
	CmdStats
	CmdVersion
	CmdVerbosity
	CmdQuit
	CmdNoop // binary noop, meta mn: answered by the codec, never reaches a Handler
	// CmdCacheMemlimit is text "cache_memlimit <MB>": Args holds the number
	// (see CheckMemlimit).
	CmdCacheMemlimit
	cmdCount
)

var cmdNames = [...]string{
	CmdNone: "none", CmdGet: "get", CmdGets: "gets", CmdGat: "gat", CmdGats: "gats",
	CmdTouch: "touch", CmdSet: "set", CmdAdd: "add", CmdReplace: "replace",
	CmdAppend: "append", CmdPrepend: "prepend", CmdCas: "cas", CmdDelete: "delete",
	CmdIncr: "incr", CmdDecr: "decr", CmdFlushAll: "flush_all", CmdStats: "stats",
	CmdVersion: "version", CmdVerbosity: "verbosity", CmdQuit: "quit", CmdNoop: "noop",
	CmdCacheMemlimit: "cache_memlimit",
}

func (c Command) String() string {
	if int(c) < len(cmdNames) {
		return cmdNames[c]
	}
	return "cmd(" + strconv.Itoa(int(c)) + ")"
}

// NumCommands is the number of Command values, for tables indexed by Command.
const NumCommands = int(cmdCount)

// IsStorage reports whether c carries a data block.
func (c Command) IsStorage() bool {
	return c >= CmdSet && c <= CmdCas
}

// IsRead reports whether c returns items (get family).
func (c Command) IsRead() bool {
	return c >= CmdGet && c <= CmdGats
}

// Want says which parts of a hit the client asked to see. The classic
// commands imply a fixed set (get: value+flags; gets: value+flags+CAS); meta
// commands choose per request. Handlers may ignore it and always fill a Hit
// completely; it exists so that a handler can skip work (rend skips the L2
// TTL lookup when nobody asked for it) and so that encoders know what to print.
type Want uint16

const (
	WantValue Want = 1 << iota
	WantFlags
	WantCAS
	WantTTL  // remaining time to live (mg t)
	WantKey  // echo the key (mg k, binary getk)
	WantSize // value length without the value (mg s)
	// WantFetched and WantAccess ask for the item's meta state: whether it
	// was read before (mg h) and its last access (mg l). A proxy must then
	// ask the layer that keeps that state (see package item).
	WantFetched
	WantAccess
)

// Request is one client request in protocol-neutral form.
type Request struct {
	Command Command

	// Keys holds the request's keys: exactly one for every keyed command,
	// one or more for the get family in the text protocol.
	Keys [][]byte

	// Value is the data block of a storage command.
	Value []byte
	// Flags are the client flags of a storage command (or the flags a
	// vivified meta item is created with).
	Flags uint32
	// Exptime is the expiration time exactly as the client sent it, with
	// memcached's meaning: 0 never; 1..MaxRelativeExptime seconds from now;
	// larger values absolute unix time; negative already expired. For
	// gat/gats/touch it is the new expiration; for flush_all, the delay.
	// Use AbsExpiry to turn it into an absolute time.
	Exptime int64
	// HasExptime is false when a command that may change the TTL did not
	// (mg without T). Classic commands always set it.
	HasExptime bool

	// CAS is the compare value: cas's unique, the binary header's CAS, the
	// meta C token. 0 means "no compare".
	CAS uint64
	// NewCAS asks that a successful write take this exact CAS version
	// (meta E). 0 means the store picks one.
	NewCAS uint64

	// Delta, Initial and Vivify drive incr/decr. Vivify (binary exptime !=
	// 0xffffffff, meta ma N) means a miss creates the item with Initial.
	Delta   uint64
	Initial uint64
	Vivify  bool

	// Want says which fields of each hit the client asked for.
	Want Want

	// Invalidate is meta's I flag (md: mark stale instead of removing; ms:
	// the write is allowed when the compare CAS is older). Handlers that do
	// not support stale items treat it as absent.
	Invalidate bool

	// Mods are the meta protocol's item modifiers, explicit so handlers
	// need not read codec state. Zero for classic and binary requests.
	Mods Mods

	// Args is the rest of the line for stats (the group) and verbosity.
	Args []byte

	// Quiet suppresses the reply the protocol allows to suppress: text
	// noreply, meta q, binary quiet opcodes. Encoders interpret it; handlers
	// need not look at it.
	Quiet bool

	// Opaque is the binary header's opaque, echoed in the reply.
	Opaque uint32
	// Opcode is the binary opcode (or meta command letter), kept so the
	// encoder can answer in kind (getk vs get, quiet forms).
	Opcode uint8
	// Meta is a codec-private area: the meta encoder stores the return flags
	// the client asked for here (opaque token, k, b...). Handlers ignore it.
	Meta MetaFlags

	arena []byte
}

// Mods are the meta protocol's per-item modifiers (see package item for
// what each does). The meta codec sets them; classic and binary requests
// leave them zero.
type Mods struct {
	// Meta marks a meta command (mg ms md ma): its reply may carry W, X
	// and Z, and the fields below apply.
	Meta bool
	// SetTTL (ma T; mg T, which also makes the command CmdGat) sets a
	// hit's TTL to Request.Exptime. Without it, a binary incr's Exptime
	// applies only to the item it creates.
	SetTTL bool
	// VivifyExptime is N's TTL, for the item mg N / ma N creates.
	VivifyExptime int64
	// Recache (mg R, HasRecache) hands the win token (W) to the first
	// reader of an item whose remaining TTL is below Recache seconds.
	Recache    int64
	HasRecache bool
	// memcached applies T and N and prints t in flag order: TTLBeforeSet
	// says t came before T, TTLBeforeVivify before N, and VivifyAfterSet
	// that N came after T (so a created item keeps N's TTL).
	TTLBeforeSet, TTLBeforeVivify, VivifyAfterSet bool
	// NoBump (mg u) reads without recording an access.
	NoBump bool
	// ClassicRead is an mg that reads as a classic get, gets, gat or gats
	// does: it takes no W (win) token, though the reply still shows X and
	// Z. It is mnemonic's G flag (Limits.PeerFlags), which rend sends when
	// it reads L2 for a client's classic read, so that such a read leaves
	// a stale item's token for the next mg, as memcached does.
	ClassicRead bool
	// PeerAccess is mnemonic's A flag on an mg (Limits.PeerFlags): the
	// unix second of the last access rend's L1 copy of the item saw, whose
	// fetches never reached mnemonic. The read counts them first: the item
	// is fetched, and its last access is at least PeerAccess. rend sends
	// it on an mg u before an md I takes the copy out, and on the ma of an
	// incr or decr (rend/orca/meta.go).
	PeerAccess int64
}

// MetaFlags records per-request meta protocol details a codec needs when
// encoding the reply. Its fields are meaningful to textproto only.
type MetaFlags struct {
	Opaque []byte // O token to echo
	Base64 bool   // b: key is base64
	Mode   byte   // ms M / ma M token as sent
	Flags  uint32 // bit set of requested return flags, codec-defined
}

// Reset clears r for reuse, keeping its buffers.
func (r *Request) Reset() {
	keys := r.Keys[:0]
	arena := r.arena[:0]
	*r = Request{Keys: keys, arena: arena}
}

// Retained is the memory r keeps across Reset, in bytes (its arena, key
// list and value buffer), for pools deciding whether to keep r.
func (r *Request) Retained() int {
	return cap(r.arena) + cap(r.Value) + int(unsafe.Sizeof([]byte(nil)))*cap(r.Keys)
}

// AddKey copies k into the request's arena and appends it to Keys.
// Slices previously returned by AddKey or CopyBytes stay valid.
func (r *Request) AddKey(k []byte) {
	r.Keys = append(r.Keys, r.CopyBytes(k))
}

// CopyBytes copies b into the request's arena and returns the copy.
func (r *Request) CopyBytes(b []byte) []byte {
	if cap(r.arena)-len(r.arena) < len(b) {
		// Start a fresh block rather than growing: earlier slices keep
		// pointing at the old block, which stays alive through them.
		n := 2 * cap(r.arena)
		if n < 256 {
			n = 256
		}
		if n < len(b) {
			n = len(b)
		}
		r.arena = make([]byte, 0, n)
	}
	start := len(r.arena)
	r.arena = append(r.arena, b...)
	return r.arena[start:len(r.arena):len(r.arena)]
}

// Key returns the first key, or nil.
func (r *Request) Key() []byte {
	if len(r.Keys) == 0 {
		return nil
	}
	return r.Keys[0]
}

// ValueBuffer returns r.Value resized to n bytes, reusing its capacity, so a
// codec can read a data block straight into it.
func (r *Request) ValueBuffer(n int) []byte {
	if cap(r.Value) < n {
		r.Value = make([]byte, n)
	}
	r.Value = r.Value[:n]
	return r.Value
}

// Status is the outcome of a request. Outcomes a client can act on are
// statuses, not Go errors.
type Status uint8

const (
	StatusOK          Status = iota // stored, deleted, touched, found (hits in Hits), done
	StatusNotStored                 // add on existing key, replace/append/prepend on missing key
	StatusExists                    // CAS mismatch
	StatusNotFound                  // miss: delete/touch/incr/cas on a missing key
	StatusNonNumeric                // incr/decr on a value that is not a decimal number
	StatusTooLarge                  // value larger than the item size limit
	StatusClientError               // bad request; Message says why
	StatusServerError               // the server failed; Message says why (never err.Error())
)

var statusNames = [...]string{"ok", "not_stored", "exists", "not_found", "non_numeric", "too_large", "client_error", "server_error"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// Hit is one item found by a read.
type Hit struct {
	// Index is the position of the hit's key in Request.Keys.
	Index int
	Value []byte
	Flags uint32
	CAS   uint64
	// Exptime is the absolute expiry in unix seconds, 0 for never.
	Exptime int64
	// Win, Stale and Won carry meta's W, X and Z return flags for handlers
	// that implement stale-while-revalidate; others leave them false.
	Win, Stale, Won bool
	// Fetched (mg h) says the item had been read before this request;
	// Accessed (mg l) is the unix second of its last recorded access
	// before it (0: unknown, printed as l0).
	Fetched  bool
	Accessed int64
	// EarlyTTL says the reply's t shows EarlyExptime, the expiry before a
	// T or N that came after t in the request changed it to Exptime.
	EarlyTTL     bool
	EarlyExptime int64
}

// CopyMeta copies h's meta fields (W X Z, h, l, early t) to dst, for a
// handler that answers with a hit another handler returned.
func (h *Hit) CopyMeta(dst *Hit) {
	dst.Win, dst.Stale, dst.Won = h.Win, h.Stale, h.Won
	dst.Fetched, dst.Accessed = h.Fetched, h.Accessed
	dst.EarlyTTL, dst.EarlyExptime = h.EarlyTTL, h.EarlyExptime
}

// Stat is one line of a stats reply.
type Stat struct {
	Name, Value string
}

// Response is what a Handler answers.
//
// Ownership: a Hit's Value normally points into this Response's own arena
// (AppendHit copies into it) and stays valid until the next Reset. The one
// exception is a batch (server.GetBatcher.HandleGets): there the hits of
// responses 2..n may point into the arena of the batch's first response,
// because one lookup filled them all. A server that batches therefore
// encodes every reply of the batch before it resets or reuses any of its
// responses, and a handler must not Reset the first response of a batch
// after handing hits of it to the others.
type Response struct {
	Status Status
	// Hits are the items found, in request key order, for the get family.
	Hits []Hit
	// Number is the new value after incr/decr.
	Number uint64
	// CAS is the version of the item after a successful write or incr/decr
	// (meta c, binary header CAS).
	CAS uint64
	// Stats are the lines of a stats reply.
	Stats []Stat
	// Message is the text after CLIENT_ERROR/SERVER_ERROR, or the version
	// string for CmdVersion. It must be a fixed, safe string.
	Message string

	arena []byte
}

// Reset clears r for reuse, keeping its buffers.
func (r *Response) Reset() {
	*r = Response{Hits: r.Hits[:0], Stats: r.Stats[:0], arena: r.arena[:0]}
}

// Retained is the memory r keeps across Reset, in bytes (its arena and
// hit list), for pools deciding whether to keep r.
func (r *Response) Retained() int {
	return cap(r.arena) + int(unsafe.Sizeof(Hit{}))*cap(r.Hits)
}

// AppendHit copies value into the response and records a hit for key index i.
func (r *Response) AppendHit(i int, value []byte, flags uint32, cas uint64, exptime int64) *Hit {
	v := r.space(len(value))
	copy(v, value)
	r.Hits = append(r.Hits, Hit{Index: i, Value: v, Flags: flags, CAS: cas, Exptime: exptime})
	return &r.Hits[len(r.Hits)-1]
}

// AppendHitBuffer records a hit for key index i whose Value is n bytes of
// the response's own memory, for the caller to fill before anyone reads the
// response: a value assembled from parts, or read straight from a
// connection, without a copy through a buffer of its own. The bytes are
// owned like AppendHit's (valid until the next Reset); their content is
// undefined until filled.
func (r *Response) AppendHitBuffer(i, n int, flags uint32, cas uint64, exptime int64) *Hit {
	r.Hits = append(r.Hits, Hit{Index: i, Value: r.space(n), Flags: flags, CAS: cas, Exptime: exptime})
	return &r.Hits[len(r.Hits)-1]
}

// space returns n bytes of the arena (a non-nil empty slice for n == 0).
func (r *Response) space(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	if cap(r.arena)-len(r.arena) < n {
		// A fresh block rather than growing: earlier hits keep pointing
		// at the old one, which stays alive through them.
		c := 2 * cap(r.arena)
		if c < 4096 {
			c = 4096
		}
		if c < n {
			c = n
		}
		r.arena = make([]byte, 0, c)
	}
	start := len(r.arena)
	r.arena = r.arena[:start+n]
	return r.arena[start : start+n : start+n]
}

// A codec given a way to send values by reference (see server.Codec's
// SetValueRef) uses it for a reply whose values total at least RefMinReply
// bytes and more than the write buffer has room for (so the buffer would be
// written during the reply anyway: sending it at once adds no write), and
// in such a reply for the values of at least RefMinValue bytes (a smaller
// one costs the kernel more as a writev segment of its own than its copy).
const (
	RefMinReply = 4 << 10
	RefMinValue = 512
)

// ValueBytes is the total length of r's hit values.
func (r *Response) ValueBytes() int {
	n := 0
	for i := range r.Hits {
		n += len(r.Hits[i].Value)
	}
	return n
}

// ServerError sets a SERVER_ERROR outcome with a fixed message.
func (r *Response) ServerError(msg string) {
	r.Status = StatusServerError
	r.Message = msg
}

// ClientError sets a CLIENT_ERROR outcome with a fixed message.
func (r *Response) ClientError(msg string) {
	r.Status = StatusClientError
	r.Message = msg
}

// Handler executes requests. Implementations must be safe for concurrent use
// by many connections. Handle never sees CmdNoop or CmdQuit.
//
// A returned error means an internal or I/O failure (a backend went away);
// the server logs it and answers SERVER_ERROR with resp.Message if the handler
// set one, or a generic message. Protocol outcomes (miss, exists, not stored)
// are statuses in resp, never errors.
type Handler interface {
	Handle(ctx context.Context, req *Request, resp *Response) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request, resp *Response) error

func (f HandlerFunc) Handle(ctx context.Context, req *Request, resp *Response) error {
	return f(ctx, req, resp)
}

// Limits bound what a parser accepts and allocates.
type Limits struct {
	// MaxKeyLen is the longest key accepted (memcached: 250).
	MaxKeyLen int
	// MaxBase64KeyLen is the longest key token a meta command carrying
	// the b flag may have. memcached checks the token against MaxKeyLen
	// before decoding it (the default), so binary keys of more than 186
	// bytes cannot be sent to it in base64; mnemonic allows
	// base64.StdEncoding.EncodedLen(MaxKeyLen) so that rend can pass every
	// binary-protocol key on. The decoded key is held to MaxKeyLen.
	MaxBase64KeyLen int
	// MaxItemSize is the largest data block accepted; a larger one is
	// swallowed and answered "SERVER_ERROR object too large for cache".
	MaxItemSize int
	// MaxKeys bounds the number of keys in one text get. The default is
	// as many as a MaxLineLen line can hold: memcached has no key limit.
	MaxKeys int
	// MaxLineLen bounds a get/gets line (memcached: unbounded); every
	// other text command line is bounded by 16 KiB, as memcached's.
	MaxLineLen int
	// PeerFlags accepts the meta flags only rend sends to mnemonic: mg's G
	// (Mods.ClassicRead) and A (Mods.PeerAccess). memcached answers "CLIENT_ERROR invalid flag" to
	// them, and so does a codec without PeerFlags (rend's own listeners).
	PeerFlags bool
}

// Default limits, matching memcached 1.6's defaults.
const (
	DefaultMaxKeyLen   = 250
	DefaultMaxItemSize = 1 << 20
	DefaultMaxLineLen  = 8 << 20
	DefaultMaxKeys     = DefaultMaxLineLen / 2
)

// EnsureDefaults fills zero fields with the defaults.
func (l *Limits) EnsureDefaults() {
	if l.MaxKeyLen <= 0 {
		l.MaxKeyLen = DefaultMaxKeyLen
	}
	if l.MaxItemSize <= 0 {
		l.MaxItemSize = DefaultMaxItemSize
	}
	if l.MaxBase64KeyLen < l.MaxKeyLen {
		l.MaxBase64KeyLen = l.MaxKeyLen
	}
	if l.MaxKeys <= 0 {
		l.MaxKeys = DefaultMaxKeys
	}
	if l.MaxLineLen <= 0 {
		l.MaxLineLen = DefaultMaxLineLen
	}
}

// MaxRelativeExptime is the largest exptime memcached treats as relative
// seconds (30 days); larger values are absolute unix times.
const MaxRelativeExptime = 60 * 60 * 24 * 30

// AbsExpiry converts a client exptime to an absolute unix time in seconds.
// It returns 0 for "never" and expired=true for a time already past
// (negative exptime, or an absolute time not after now).
func AbsExpiry(exptime int64, now time.Time) (abs int64, expired bool) {
	switch {
	case exptime == 0:
		return 0, false
	case exptime < 0:
		return 0, true
	case exptime <= MaxRelativeExptime:
		return now.Unix() + exptime, false
	default:
		return exptime, exptime <= now.Unix()
	}
}

// RemainingTTL is the meta "t" value for an absolute expiry: -1 for never,
// else the seconds left, 0 once the expiry is reached (an item that old is
// already invisible, so 0 shows only in a race with its expiry).
func RemainingTTL(abs int64, now time.Time) int64 {
	if abs == 0 {
		return -1
	}
	left := abs - now.Unix()
	if left < 0 {
		left = 0
	}
	return left
}

// ValidKey reports whether k is a valid memcached key: 1..maxLen bytes with
// no control characters or spaces.
func ValidKey(k []byte, maxLen int) bool {
	if len(k) == 0 || len(k) > maxLen {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// Sentinel errors returned by a codec's ReadRequest.
var (
	// ErrReplied means the request was malformed and the codec has already
	// written memcached's answer (ERROR, CLIENT_ERROR ..., SERVER_ERROR
	// object too large for cache) and consumed any data block: the stream
	// is in sync, go on reading.
	ErrReplied = errors.New("protocol: malformed request answered")
	// ErrClose means the codec wrote its answer (if any) and the stream
	// cannot be resynchronised (or the client asked to quit): flush and
	// close the connection, as memcached does.
	ErrClose = errors.New("protocol: connection must close")
)
