#include "scratch_pool.h"

#include <cstdint>
#include <list>
#include <mutex>
#include <new>

namespace maskattn {
namespace cpu {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kPoolLimit = size_t(512) << 20;  // bytes kept for later calls; beyond, blocks are freed
// sizes are rounded up so that near sizes share blocks
inline size_t rounded(size_t bytes) {
  const size_t granule = bytes < (size_t(1) << 20) ? size_t(4) << 10 : size_t(64) << 10;
  return (bytes + granule - 1) / granule * granule;
}

struct Block {
  void* p;
  size_t bytes;
};

struct Pool {
  std::mutex mutex;
  std::list<Block> free;  // most recently released first
  size_t bytes = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: kernels may run during interpreter shutdown
  return *p;
}

void free_block(const Block& b) { ::operator delete(b.p, std::align_val_t(kAlign)); }

}  // namespace

void* acquire_scratch(size_t bytes, size_t* capacity) {
  bytes = rounded(bytes == 0 ? kAlign : bytes);
  Pool& pl = pool();
  {
    std::lock_guard<std::mutex> lock(pl.mutex);
    // the smallest pooled block that fits without wasting more than half of itself
    auto best = pl.free.end();
    for (auto it = pl.free.begin(); it != pl.free.end(); ++it)
      if (it->bytes >= bytes && it->bytes <= 2 * bytes && (best == pl.free.end() || it->bytes < best->bytes))
        best = it;
    if (best != pl.free.end()) {
      const Block b = *best;
      pl.free.erase(best);
      pl.bytes -= b.bytes;
      *capacity = b.bytes;
      return b.p;
    }
  }
  *capacity = bytes;
  return ::operator new(bytes, std::align_val_t(kAlign));
}

void release_scratch(void* p, size_t capacity) {
  if (p == nullptr) return;
  if (capacity > kPoolLimit) return free_block({p, capacity});
  Pool& pl = pool();
  std::list<Block> evicted;
  {
    std::lock_guard<std::mutex> lock(pl.mutex);
    pl.free.push_front({p, capacity});
    pl.bytes += capacity;
    while (pl.bytes > kPoolLimit) {  // the least recently released go first
      pl.bytes -= pl.free.back().bytes;
      evicted.splice(evicted.end(), pl.free, std::prev(pl.free.end()));
    }
  }
  for (const Block& b : evicted) free_block(b);
}

size_t trim_scratch() {
  Pool& pl = pool();
  std::list<Block> all;
  size_t bytes;
  {
    std::lock_guard<std::mutex> lock(pl.mutex);
    all.swap(pl.free);
    bytes = pl.bytes;
    pl.bytes = 0;
  }
  for (const Block& b : all) free_block(b);
  return bytes;
}

size_t pooled_scratch_bytes() {
  Pool& pl = pool();
  std::lock_guard<std::mutex> lock(pl.mutex);
  return pl.bytes;
}

}  // namespace cpu
}  // namespace maskattn
