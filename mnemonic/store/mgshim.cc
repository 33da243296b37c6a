// See mgshim.h and multiget.go.
#include "mgshim.h"

#include <cstring>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

// rocksdb_t as RocksDB's C API (db/c.cc) defines it: the DB pointer and
// nothing else. grocksdb hands out this pointer; multiget.go checks at open
// that a lookup through it matches grocksdb's.
struct rocksdb_t {
  rocksdb::DB* rep;
};

namespace {

void setErr(const rocksdb::Status& s, char* err, size_t errcap) {
  if (errcap == 0) {
    return;
  }
  std::string m = s.ToString();
  size_t l = m.size() < errcap - 1 ? m.size() : errcap - 1;
  std::memcpy(err, m.data(), l);
  err[l] = 0;
}

void copyOut(size_t n, const rocksdb::PinnableSlice* vals, const unsigned char* st, char* out) {
  for (size_t i = 0; i < n; i++) {
    if (st[i] == MN_FOUND) {
      std::memcpy(out, vals[i].data(), vals[i].size());
      out += vals[i].size();
    }
  }
}

}  // namespace

extern "C" size_t mn_multi_get(void* cdb, size_t n, const char* keys, const size_t* klens,
                               char* out, size_t outcap, size_t* vlens, unsigned char* st,
                               void** pending, const char** vptrs, char* err, size_t errcap) {
  rocksdb::DB* db = static_cast<rocksdb_t*>(cdb)->rep;
  rocksdb::ReadOptions ro;
  auto* vals = new rocksdb::PinnableSlice[n];
  bool errSet = false;
  auto record = [&](size_t i, const rocksdb::Status& s) {
    if (s.ok()) {
      st[i] = MN_FOUND;
      vlens[i] = vals[i].size();
    } else {
      st[i] = s.IsNotFound() ? MN_MISS : MN_ERROR;
      vlens[i] = 0;
      if (st[i] == MN_ERROR && !errSet) {
        setErr(s, err, errcap);
        errSet = true;
      }
    }
  };
  if (n == 1) {
    rocksdb::Status s = db->Get(ro, db->DefaultColumnFamily(), rocksdb::Slice(keys, klens[0]), &vals[0]);
    record(0, s);
  } else {
    auto* ks = new rocksdb::Slice[n];
    auto* sts = new rocksdb::Status[n];
    for (size_t i = 0, off = 0; i < n; off += klens[i], i++) {
      ks[i] = rocksdb::Slice(keys + off, klens[i]);
    }
    db->MultiGet(ro, db->DefaultColumnFamily(), n, ks, vals, sts, false);
    for (size_t i = 0; i < n; i++) {
      record(i, sts[i]);
    }
    delete[] sts;
    delete[] ks;
  }
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    total += vlens[i];
  }
  if (total <= outcap) {
    copyOut(n, vals, st, out);
    delete[] vals;
    *pending = nullptr;
    return total;
  }
  for (size_t i = 0; i < n; i++) {
    vptrs[i] = st[i] == MN_FOUND ? vals[i].data() : nullptr;
  }
  *pending = vals;
  return total;
}

extern "C" void mn_release(void* pending) {
  delete[] static_cast<rocksdb::PinnableSlice*>(pending);
}

extern "C" int mn_write(void* cdb, int sync, size_t n, const unsigned char* ops, const char* keys,
                        const size_t* klens, const char* hdrs, const size_t* hlens,
                        const char* const* vals, const size_t* vlens, char* err, size_t errcap) {
  rocksdb::DB* db = static_cast<rocksdb_t*>(cdb)->rep;
  // Reserve the batch's whole representation at once (12 bytes of batch
  // header, and per record a tag and two varint lengths at most).
  size_t reserve = 12;
  for (size_t i = 0; i < n; i++) {
    reserve += 11 + klens[i] + (ops[i] == MN_PUT ? hlens[i] + vlens[i] : 0);
  }
  rocksdb::WriteBatch wb(reserve);
  rocksdb::Status s;
  for (size_t i = 0, koff = 0, hoff = 0; i < n && s.ok(); koff += klens[i], i++) {
    rocksdb::Slice key(keys + koff, klens[i]);
    if (ops[i] == MN_DELETE) {
      s = wb.Delete(key);
      continue;
    }
    rocksdb::Slice parts[2] = {rocksdb::Slice(hdrs + hoff, hlens[i]), rocksdb::Slice(vals[i], vlens[i])};
    hoff += hlens[i];
    s = wb.Put(rocksdb::SliceParts(&key, 1), rocksdb::SliceParts(parts, 2));
  }
  if (s.ok()) {
    rocksdb::WriteOptions wo;
    wo.sync = sync != 0;
    s = db->Write(wo, &wb);
  }
  if (!s.ok()) {
    setErr(s, err, errcap);
    return 1;
  }
  return 0;
}
