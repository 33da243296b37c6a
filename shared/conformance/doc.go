// Package conformance is a wire-level conformance suite for memcached-compatible
// servers. Scripts of raw requests are sent to a target server and its replies
// are compared, after normalisation, with the replies a real memcached gave
// when the script's expectations were last regenerated (-rewrite).
//
// # Running it
//
// From any module of the workspace:
//
//	conformance.Run(t, conformance.Target{Name: "mnemonic", Addr: addr,
//		Groups: []string{"text", "meta", "binary", "ttl"}})
//
// runs every script of the listed groups as subtests t/<group>/<script>. The
// scripts are embedded in the package, so the caller's working directory does
// not matter. Scripts run one after another against the same server; before
// each script the runner sends "flush_all" on a fresh connection, so every
// script starts from an empty cache (scripts therefore need no unique key
// prefixes, but a target must implement flush_all). Groups lists what the
// target supports; see AllGroups for the names.
//
// In this package, "go test" starts a real memcached and runs every group
// against it; "-addr ADDR -groups a,b" runs against any server instead, and
// "-rewrite" regenerates the expected replies of every script from a fresh
// memcached.
//
// # Script files
//
// Scripts live in testdata/<group>/<name>.txt. A script is a sequence of
// steps separated by blank lines; lines starting with '#' between steps are
// comments. A request step is a directive line, the request, a "----" line and
// the expected reply, ended by a blank line or the end of the file:
//
//	# set then get
//	send
//	set foo 5 0 3
//	bar
//	get foo
//	----
//	STORED
//	VALUE foo 5 3
//	bar
//	END
//
// An expected reply that contains empty lines (an empty value) is written
// between doubled separators, as in cockroachdb/datadriven:
//
//	----
//	----
//	VALUE foo 0 0
//
//	END
//	----
//	----
//
// Directives:
//
//	send [options]     text request: every line is sent followed by "\r\n"
//	sendbin [options]  binary packets, one per line (see below)
//	sendhex [options]  raw bytes written in hex, for malformed packets
//	sleep DURATION     wait (only where a TTL must pass; prefer poll=)
//	close [conn=NAME]  close a client connection
//
// Options of send, sendbin and sendhex:
//
//	conn=NAME  the client connection to use (default "main"). Connections
//	           are opened on first use and again after the server closed
//	           them. A connection is binary if the first byte ever written
//	           to it is 0x80, text otherwise.
//	poll=DUR   repeat the request (every 50ms) until the reply matches the
//	           expectation, failing after DUR: the way to wait for an expiry.
//	           -rewrite keeps a poll step's expectation as written.
//	shape      compare the shape only: every expected line must appear in
//	           the reply and the last lines must be equal; stats values are
//	           replaced by "$". Used for stats. -rewrite fills an empty
//	           expectation with the full reply and otherwise keeps it.
//	nosync     do not send the synchronisation request (below); the reply
//	           is whatever arrives until the connection idles for 200ms.
//	           For requests that leave the server waiting for more bytes.
//
// # Escapes and variables
//
// Request lines (and the strings of sendbin and sendhex) are text with
// escapes: \\ \r \n \t \0 \xHH \$ \" and \{X*N} for N repetitions of X (X may
// itself hold escapes: \{\x00*300}). A request line ending with a lone
// backslash is sent without its "\r\n". "$name" substitutes a variable, with
// an optional +N or -N: $cas1, $cas2... are CAS values captured from earlier
// replies of the script, $now is the current unix time ($now+2). A '$' not
// followed by a letter is literal. Write trailing spaces as \x20: editors strip
// them.
//
// Expected replies use the same escapes, so bytes that are not printable are
// visible. A text reply is shown one line per "\r\n"-terminated line; a last
// line without "\r\n" ends in a lone backslash; "[closed]" means the server
// closed the connection. Runs of 32 or more equal bytes are shown as \{X*N}.
//
// # Normalisation
//
// Replies are rendered in a normalised form before they are compared:
//
//   - CAS values (the fifth field of a VALUE line, the meta "c" return flag,
//     the binary header's CAS) become $cas1, $cas2... in order of first
//     appearance in the script; the same value always maps to the same name,
//     so "cas with the value from gets" scripts use $cas1 in a later request,
//     and a CAS that must change shows up as a new name.
//   - "VERSION x" becomes "VERSION $version" (binary: value=$version).
//   - The meta "t" flag (remaining TTL) is rounded to the nearest multiple of
//     ten and shown as t~N, because a clock tick (or memcached's coarse clock
//     against the runner's $now) may shift it by a second or two: give TTLs
//     that are multiples of ten where t is read. t-1 (no expiry) is exact.
//   - The meta "l" flag (seconds since the last access) is shown as l~0
//     (accessed this second or the one before) or l~2+ (longer ago). A
//     script waits "sleep 3s" between a write and a read that must see an
//     old access: memcached's coarse clock may tick late on a loaded
//     machine, and the phase of its tick is unknown. memcached 1.6 may
//     apply a fetch's bump up to a second late (its LRU maintainer does
//     it), so a step that expects a moved time (l~0) right after the fetch
//     uses poll=.
//   - In shape steps, "STAT name value" becomes "STAT name $".
//
// # Binary packets
//
// A sendbin line describes one request packet; lengths are computed:
//
//	set key=foo value="bar" flags=5 exp=0 opaque=7 cas=$cas1
//	incr key=n delta=1 initial=10 exp=0
//	getkq key=foo opaque=3
//	noop opaque=4
//
// The first word is an opcode name (get set add replace delete incr decr quit
// flush getq noop version getk getkq append prepend stat setq addq replaceq
// deleteq incrq decrq quitq flushq appendq prependq verbosity touch gat gatq
// gatk gatkq) or a number (0x55). Fields: key= value= (strings, quoted when
// they hold spaces), extras= (hex), opaque= cas= vbucket= datatype= magic=, and
// keylen= extlen= bodylen= to lie about lengths. Extras are built from the
// opcode's fields unless extras= is given: flags= exp= (set/add/replace,
// always present), delta= initial= exp= (incr/decr, always present), exp=
// (touch/gat, always; flush, only when given), level= (verbosity). Numbers are
// decimal or 0x hex; exp=-1 is 0xffffffff.
//
// A sendhex body is hex digits (spaces and '|' ignored), "quoted strings" and
// $casN (eight bytes, big-endian); '#' starts a comment.
//
// Binary replies are decoded, one packet per line:
//
//	get status=KEY_ENOENT opaque=8 value="Not found"
//	getk opaque=9 cas=$cas1 flags=5 key="foo" value="bar"
//	incr cas=$cas2 num=11
//
// Fields equal to zero or empty are left out; flags= is the four bytes of
// extras of a get-family reply, num= an eight-byte incr/decr result, and
// extras= any other extras. Bytes that do not parse as a reply packet are
// shown as raw="..." (or partial="..." for an incomplete packet).
//
// # How replies are delimited
//
// After each request the runner writes a synchronisation request on the same
// connection, in the same write: "mn\r\n" on a text connection, a noop with
// opaque 0x5ec0ffee on a binary one. Everything that arrives before its reply
// (MN, or that noop) is the reply to the step. Targets must therefore answer
// mn and noop. Because a step's own mn also answers MN, a text reply that
// ends in MN is accepted only once no more bytes arrive for 30ms; so is any
// reply that does not match (a server answering more than expected is caught
// by the mismatch). When a script ends, each connection it left open gets a
// last "version" (binary: the sync noop) whose reply must come alone: a reply
// the server sent late, or beyond what the script expected, fails the script
// there.
//
// # Groups
//
//	text           classic text commands, noreply, multi-get, errors
//	text-badline   a rejected storage command line is followed by its data
//	               block, which memcached then reads as a command line
//	text-verbosity verbosity
//	meta           mg ms md ma mn: flags, modes, base64 keys, opaque, quiet
//	               pipelines, errors; what counts as a fetch (mg h)
//	meta-stale     stale-while-revalidate: md I, ms I, mg N; W X Z flags;
//	               a classic read takes no W token
//	binary         every binary opcode but stat and verbosity, quiet
//	               pipelines, CAS, opaque, errors (some close the connection)
//	stats          stats shape, text and binary
//	ttl            relative, negative, absolute exptimes, touch, gat, delayed
//	               flush_all, last access (mg l); several scripts wait for an
//	               expiry or for time to pass (2-3 s)
//	limits         the 1 MiB item size limit (rend may declare larger values)
//	quirks         memcached implementation details protocol.txt leaves open
//
// # Adding a script
//
// Write the requests with empty expectations, run
//
//	go test ./shared/conformance -rewrite
//
// and review the diff of testdata: the expectations are memcached's replies.
package conformance
