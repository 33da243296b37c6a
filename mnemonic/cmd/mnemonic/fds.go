package main

import (
	"log/slog"
	"syscall"
)

// File descriptors. RocksDB opens table files (up to max_open_files per
// shard), WAL files, the MANIFEST, LOG and LOCK; every client connection
// takes one more. When connections take the last descriptor, a memtable
// flush or a WAL switch fails with EMFILE and RocksDB stops the shard's
// writes. So mnemonic reserves RocksDB's share first and lets connections
// have only the rest.
const (
	// fdPerShardExtra covers a shard's files besides its table cache: WAL
	// files (up to maxWriteBuffers+1), MANIFEST, LOG, LOCK, OPTIONS, the
	// directory handles, a flush's new table file and the files of a
	// compaction in progress.
	fdPerShardExtra = 32
	// fdProcess covers the rest of the process: stdio, the listeners,
	// admin HTTP connections, epoll, VERSIONS/FLUSH rewrites, /proc reads.
	fdProcess = 64
	// minConnFDs is the fewest connections mnemonic runs with; below that
	// it shrinks RocksDB's table cache instead.
	minConnFDs = 16
	// minMaxOpenFiles is RocksDB's own floor for max_open_files.
	minMaxOpenFiles = 20
)

// fdLimit returns the soft RLIMIT_NOFILE (the Go runtime raised it to the
// hard limit at start), or 0 when it cannot be read or is unlimited.
func fdLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<30 {
		return 0
	}
	return int(r.Cur)
}

// fdBudget splits limit descriptors: RocksDB's reserve (shards x
// (maxOpenFiles + fdPerShardExtra) + fdProcess) first, connections get the
// rest. When the limit is too small for both, RocksDB's table cache is
// shrunk to half the limit. It returns the max_open_files and max_conns to
// run with; limit 0 (unknown) changes nothing.
func fdBudget(limit, shards, maxOpenFiles, maxConns int) (openFiles, conns, reserve int) {
	if limit <= 0 {
		return maxOpenFiles, maxConns, 0
	}
	openFiles = maxOpenFiles
	if fdProcess+shards*(openFiles+fdPerShardExtra)+minConnFDs > limit {
		openFiles = max(minMaxOpenFiles, (limit/2-fdProcess)/shards-fdPerShardExtra)
	}
	reserve = fdProcess + shards*(openFiles+fdPerShardExtra)
	conns = min(maxConns, max(1, limit-reserve))
	return openFiles, conns, reserve
}

// applyFDBudget lowers cfg's max_open_files and max_conns to fit the
// descriptor limit, logging a warning for each it lowers (log may be nil).
func applyFDBudget(cfg *Config, log *slog.Logger) {
	limit := fdLimit()
	openFiles, conns, reserve := fdBudget(limit, cfg.Shards, cfg.MaxOpenFiles, cfg.MaxConns)
	if log == nil {
		cfg.MaxOpenFiles, cfg.MaxConns = openFiles, conns
		return
	}
	if openFiles < cfg.MaxOpenFiles {
		log.Warn("file descriptor limit too low for max_open_files: RocksDB's table cache shrunk (raise LimitNOFILE / ulimit -n)",
			"nofile_limit", limit, "max_open_files", cfg.MaxOpenFiles, "lowered_to", openFiles)
		cfg.MaxOpenFiles = openFiles
	}
	if conns < cfg.MaxConns {
		log.Warn("max_conns lowered so that RocksDB keeps its file descriptors (raise LimitNOFILE / ulimit -n)",
			"nofile_limit", limit, "rocksdb_reserve", reserve, "max_conns", cfg.MaxConns, "lowered_to", conns)
		cfg.MaxConns = conns
	}
}
