// Package binproto implements memcached's binary protocol (server codec and
// client encoders/decoders). Work in progress: skeleton.
package binproto
