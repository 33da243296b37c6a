// Package binproto implements memcached's binary protocol as memcached 1.6.18
// speaks it: a server codec (ServerCodec, an implementation of server.Codec)
// that turns request packets into protocol.Request values and
// protocol.Response values into reply packets, and client-side encoders
// (Append*) and a decoder (ReadResponse) for load generators and tests.
//
// # Wire format
//
// Every packet, request or response, is a 24-byte header followed by a body
// of extras, key and value, in that order. All integers are big-endian.
//
//	 byte 0       1         2  3        4       5         6  7
//	+-------+--------+-----------+--------+--------+-------------+
//	| magic | opcode |  key len  | ext len| dtype  | vbucket/stat|
//	+-------+--------+-----------+--------+--------+-------------+
//	|   8..11: total body length  |   12..15: opaque (echoed)    |
//	+-----------------------------+------------------------------+
//	|              16..23: CAS                                   |
//	+------------------------------------------------------------+
//	| extras (ext len) | key (key len) | value (body - ext - key) |
//
// Requests carry magic 0x80 and a vbucket id (ignored); responses carry magic
// 0x81 and a status. The extras of each opcode are:
//
//	set/add/replace(+Q)  req: flags u32, exptime u32
//	incr/decr(+Q)        req: delta u64, initial u64, exptime u32 (0xffffffff: do not create)
//	touch/gat*           req: exptime u32
//	flush(+Q)            req: optional delay u32
//	get*/gat*/touch      resp (hit): flags u32
//
// # What memcached does, and so what this package does
//
// Quiet opcodes (getq, setq, ...) suppress the success reply and a get miss;
// errors are always answered, and getq/getkq/gatq/gatkq hits are answered.
// Malformed packets are answered as memcached answers them: a bad magic closes
// the connection without a reply; a key plus extras longer than the body
// answers "Unknown command" and closes; a key over 250 bytes or extras/key/body
// lengths an opcode does not allow answer "Invalid arguments" and close; an
// unknown opcode answers "Unknown command" and skips the body length after the
// key (memcached's own off-by-extras-and-key quirk, kept so that a stream that
// desyncs memcached desyncs us the same way). verbosity (0x1b) and the SASL
// opcodes are unknown commands in memcached 1.6.18 built without SASL.
//
// A set whose value is larger than Limits.MaxItemSize is answered "Too large."
// after its value is skipped, and, as in memcached, the old item is removed:
// ReadRequest hands that set to the handler as a CmdDelete (keeping the set
// opcode), and WriteResponse answers "Too large." whatever the delete did.
package binproto
