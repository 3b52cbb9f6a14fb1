#include "scratch_pool.h"

#include <omp.h>

#include <atomic>
#include <cstdint>
#include <list>
#include <mutex>
#include <new>

namespace maskattn {
namespace cpu {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kPoolLimit = size_t(512) << 20;  // bytes kept for later calls; beyond, blocks are freed
// One shard per OpenMP thread number: the threads of a parallel region take their scratch at the
// same moment, and one shared lock put one of them to sleep on every call (a futex wait and
// wake-up: tens of microseconds, more than a small kernel's work).
constexpr int kShards = 64;
// sizes are rounded up so that near sizes share blocks
inline size_t rounded(size_t bytes) {
  const size_t granule = bytes < (size_t(1) << 20) ? size_t(4) << 10 : size_t(64) << 10;
  return (bytes + granule - 1) / granule * granule;
}

struct Block {
  void* p;
  size_t bytes;
};

// Its own cache line: shards used by different threads do not share one.
struct alignas(64) Shard {
  std::mutex mutex;  // uncontended unless two teams' threads share a number (nested callers) or trim
  std::list<Block> free;  // most recently released first
  size_t bytes = 0;
};

struct Pool {
  Shard shards[kShards];
  std::atomic<size_t> bytes{0};  // over all shards: the limit is the process's
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: kernels may run during interpreter shutdown
  return *p;
}

Shard& own_shard() { return pool().shards[static_cast<unsigned>(omp_get_thread_num()) % kShards]; }

void free_block(const Block& b) { ::operator delete(b.p, std::align_val_t(kAlign)); }

}  // namespace

void* acquire_scratch(size_t bytes, size_t* capacity) {
  bytes = rounded(bytes == 0 ? kAlign : bytes);
  Shard& sh = own_shard();
  {
    std::lock_guard<std::mutex> lock(sh.mutex);
    // the smallest pooled block that fits without wasting more than half of itself
    auto best = sh.free.end();
    for (auto it = sh.free.begin(); it != sh.free.end(); ++it)
      if (it->bytes >= bytes && it->bytes <= 2 * bytes && (best == sh.free.end() || it->bytes < best->bytes))
        best = it;
    if (best != sh.free.end()) {
      const Block b = *best;
      sh.free.erase(best);
      sh.bytes -= b.bytes;
      pool().bytes -= b.bytes;
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
  Shard& sh = own_shard();
  std::list<Block> evicted;
  {
    std::lock_guard<std::mutex> lock(sh.mutex);
    sh.free.push_front({p, capacity});
    sh.bytes += capacity;
    pl.bytes += capacity;
    // over the limit: this shard's least recently released go first (other shards keep theirs
    // until their own threads release; the total overshoots by at most their blocks)
    while (pl.bytes > kPoolLimit && !sh.free.empty()) {
      sh.bytes -= sh.free.back().bytes;
      pl.bytes -= sh.free.back().bytes;
      evicted.splice(evicted.end(), sh.free, std::prev(sh.free.end()));
    }
  }
  for (const Block& b : evicted) free_block(b);
}

size_t trim_scratch() {
  Pool& pl = pool();
  size_t bytes = 0;
  for (Shard& sh : pl.shards) {
    std::list<Block> all;
    {
      std::lock_guard<std::mutex> lock(sh.mutex);
      all.swap(sh.free);
      bytes += sh.bytes;
      pl.bytes -= sh.bytes;
      sh.bytes = 0;
    }
    for (const Block& b : all) free_block(b);
  }
  return bytes;
}

size_t pooled_scratch_bytes() { return pool().bytes.load(); }

}  // namespace cpu
}  // namespace maskattn
