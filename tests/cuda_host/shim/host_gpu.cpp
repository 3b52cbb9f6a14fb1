// The host GPU's blocks (block_runner.h) and what kernels call inside them (host_gpu.h):
// the scheduler, barriers, warp collectives, the shared-memory window and cp.async queues.
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <random>
#include <vector>

#include "block_runner.h"
#include "fiber.h"
#include "host_gpu.h"

namespace maskattn {
namespace gpu {
// cuda_common.cuh declares it `extern __shared__`: the running block's dynamic shared memory.
thread_local __attribute__((aligned(128))) unsigned char dynamic_smem[cuda_host::kDynamicSmemCapacity];
}  // namespace gpu
}  // namespace maskattn

namespace cuda_host {
namespace {

enum class State : uint8_t { Ready, WaitWarp, WaitBarrier, Exited };

struct CopyChunk {
  uint32_t dst;
  unsigned char bytes[16];
};

struct Thread {
  FiberContext context;
  State state = State::Ready;
  std::vector<CopyChunk> uncommitted;
  std::deque<std::vector<CopyChunk>> committed;
};

struct Warp {
  const char* op = nullptr;
  unsigned mask = 0, arrived = 0, exited = 0;
  WarpSlots slots;
};

// One OS thread's running block; the blocks it is given run one after another.
struct Runner {
  FiberStacks stacks;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  FiberContext scheduler;
  int count = 0, warp_count = 0, current = -1, exited = 0;
  int barrier_arrived = 0;
  const char* barrier_file = nullptr;
  int barrier_line = 0;
  bool failed = false;
  std::string error;
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  size_t smem_bytes = 0;
  dim3 block{1, 1, 1};
  std::mt19937_64 rng;
};

thread_local Runner t_runner;

void set_thread_index(Runner& r, int i) {
  threadIdx.x = i % r.block.x;
  threadIdx.y = (i / r.block.x) % r.block.y;
  threadIdx.z = i / (r.block.x * r.block.y);
}

void resume(Runner& r, int i) {
  r.current = i;
  set_thread_index(r, i);
  switch_fiber(r.scheduler, r.threads[i].context);
  r.current = -1;
}

void yield(Runner& r) { switch_fiber(r.threads[r.current].context, r.scheduler); }

[[noreturn]] void exit_thread(Runner& r) {
  Thread& t = r.threads[r.current];
  if (!t.uncommitted.empty() || !t.committed.empty())
    fault("exits with %zu cp.async copies not waited for", t.uncommitted.size() + t.committed.size());
  t.state = State::Exited;
  ++r.exited;
  r.warps[r.current >> 5].exited |= 1u << (r.current & 31);
  yield(r);
  std::abort();  // an exited fiber is never resumed
}

void fiber_entry() {
  Runner& r = t_runner;
  r.body(r.ctx);
  exit_thread(r);
}

std::string hex_mask(unsigned m) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", m);
  return buf;
}

void fail_block(Runner& r, const std::string& why) {
  if (!r.failed) {
    r.failed = true;
    r.error = why;
  }
}

void run_fibers(Runner& r) {
  for (int i = 0; i < r.count; ++i) {
    Thread& t = r.threads[i];
    t.state = State::Ready;
    t.uncommitted.clear();
    t.committed.clear();
    start_fiber(t.context, r.stacks.get(i), FiberStacks::kStackBytes, &fiber_entry);
  }
  for (int w = 0; w < r.warp_count; ++w) r.warps[w].arrived = r.warps[w].exited = 0;
  r.exited = 0;
  r.barrier_arrived = 0;
  // uninitialised shared memory reads as NaN in every float width
  std::memset(maskattn::gpu::dynamic_smem, 0xff, r.smem_bytes);

  std::vector<int> warp_order(r.warp_count), ready;
  for (int w = 0; w < r.warp_count; ++w) warp_order[w] = w;
  while (!r.failed && r.exited < r.count) {
    bool progressed = false;
    std::shuffle(warp_order.begin(), warp_order.end(), r.rng);
    for (int w : warp_order) {
      const int lo = w * 32, hi = std::min(r.count, lo + 32);
      for (;;) {  // this warp's lanes, until each waits at the block barrier or has exited
        ready.clear();
        for (int i = lo; i < hi; ++i)
          if (r.threads[i].state == State::Ready) ready.push_back(i);
        if (ready.empty()) break;
        std::shuffle(ready.begin(), ready.end(), r.rng);
        for (int i : ready) {
          if (r.threads[i].state != State::Ready) continue;
          resume(r, i);
          progressed = true;
          if (r.failed) return;
        }
      }
      const Warp& wp = r.warps[w];
      if (wp.arrived != 0) {
        fail_block(r, "warp " + std::to_string(w) + ": lanes " + hex_mask(wp.arrived) + " wait at " + wp.op +
                          " (mask " + hex_mask(wp.mask) + ") while the others wait at __syncthreads or have exited");
        return;
      }
    }
    if (!progressed) {
      fail_block(r, "deadlock: every thread waits and none can go on");
      return;
    }
  }
}

Runner& running(const char* what) {
  Runner& r = t_runner;
  if (r.current < 0) {
    std::fprintf(stderr, "host GPU: %s outside a kernel\n", what);
    std::abort();
  }
  return r;
}

}  // namespace

std::string run_block(const BlockLaunch& launch, uint64_t index, uint64_t seed) {
  Runner& r = t_runner;
  r.count = (int)(launch.block.x * launch.block.y * launch.block.z);
  r.warp_count = (r.count + 31) / 32;
  if ((int)r.threads.size() < r.count) r.threads.resize(r.count);
  if ((int)r.warps.size() < r.warp_count) r.warps.resize(r.warp_count);
  r.block = launch.block;
  r.body = launch.body;
  r.ctx = launch.ctx;
  r.smem_bytes = launch.smem_bytes;
  r.failed = false;
  r.error.clear();
  r.rng.seed(seed);
  blockDim = launch.block;
  gridDim = launch.grid;
  blockIdx.x = (unsigned)(index % launch.grid.x);
  blockIdx.y = (unsigned)((index / launch.grid.x) % launch.grid.y);
  blockIdx.z = (unsigned)(index / ((uint64_t)launch.grid.x * launch.grid.y));
  run_fibers(r);
  return r.failed ? r.error : std::string();
}

bool in_kernel() { return t_runner.current >= 0; }

void fault(const char* format, ...) {
  char text[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof(text), format, args);
  va_end(args);
  Runner& r = running(text);
  char who[64];
  std::snprintf(who, sizeof(who), "thread (%u,%u,%u): ", threadIdx.x, threadIdx.y, threadIdx.z);
  fail_block(r, std::string(who) + text);
  yield(r);  // the scheduler ends the block and never resumes this fiber
  std::abort();
}

void sync_block(const char* file, int line) {
  Runner& r = running("__syncthreads");
  if (r.exited > 0) fault("__syncthreads at %s:%d after %d threads of the block exited", file, line, r.exited);
  if (r.barrier_arrived == 0) {
    r.barrier_file = file;
    r.barrier_line = line;
  } else if (r.barrier_line != line || std::strcmp(r.barrier_file, file) != 0) {
    fault("__syncthreads at %s:%d while other threads wait at %s:%d", file, line, r.barrier_file, r.barrier_line);
  }
  if (++r.barrier_arrived == r.count) {  // the last one releases everybody and goes on
    r.barrier_arrived = 0;
    for (int i = 0; i < r.count; ++i)
      if (r.threads[i].state == State::WaitBarrier) r.threads[i].state = State::Ready;
    return;
  }
  r.threads[r.current].state = State::WaitBarrier;
  yield(r);
}

int lane_id() { return running("lane_id").current & 31; }

void warp_collective(const char* op, unsigned mask, const void* in, size_t in_bytes, void* out, size_t out_bytes,
                     Combine combine) {
  Runner& r = running(op);
  const int tid = r.current, lane = tid & 31, base = tid & ~31;
  Warp& w = r.warps[tid >> 5];
  const unsigned existing = r.count - base >= 32 ? 0xffffffffu : ((1u << (r.count - base)) - 1u);
  if (!((mask >> lane) & 1u)) fault("%s: lane %d is not in its mask %s", op, lane, hex_mask(mask).c_str());
  if (mask & ~existing) fault("%s: mask %s names lanes the block does not have", op, hex_mask(mask).c_str());
  if (mask & w.exited) fault("%s: lanes %s of the mask have exited", op, hex_mask(mask & w.exited).c_str());
  if (w.arrived == 0) {
    w.op = op;
    w.mask = mask;
  } else if (w.op != op || w.mask != mask) {
    fault("lane %d at %s (mask %s) while lanes %s wait at %s (mask %s)", lane, op, hex_mask(mask).c_str(),
          hex_mask(w.arrived).c_str(), w.op, hex_mask(w.mask).c_str());
  }
  if (in_bytes > (size_t)kSlotBytes || out_bytes > (size_t)kSlotBytes) fault("%s: slot too small", op);
  if (in_bytes) std::memcpy(w.slots.in[lane], in, in_bytes);
  w.arrived |= 1u << lane;
  if (w.arrived == mask) {
    combine(w.slots, mask);
    w.arrived = 0;
    for (int l = 0; l < 32; ++l)
      if (((mask >> l) & 1u) && l != lane) r.threads[base + l].state = State::Ready;
  } else {
    r.threads[tid].state = State::WaitWarp;
    yield(r);
  }
  if (out_bytes) std::memcpy(out, w.slots.out[lane], out_bytes);
}

unsigned char* shared_window(uint32_t addr, size_t bytes, const char* what) {
  Runner& r = running(what);
  if ((size_t)addr + bytes > r.smem_bytes)
    fault("%s: shared address 0x%x (+%zu bytes) is outside the block's %zu bytes of dynamic shared memory", what,
          addr, bytes, r.smem_bytes);
  return maskattn::gpu::dynamic_smem + addr;
}

uint32_t shared_address(const void* p) {
  Runner& r = running("__cvta_generic_to_shared");
  const uintptr_t base = reinterpret_cast<uintptr_t>(maskattn::gpu::dynamic_smem), q = reinterpret_cast<uintptr_t>(p);
  if (q < base || q > base + r.smem_bytes)
    fault("__cvta_generic_to_shared: %p is not in the block's dynamic shared memory", p);
  return (uint32_t)(q - base);
}

void cp_async_16(uint32_t dst, const void* src, int src_bytes) {
  Runner& r = running("cp.async");
  unsigned char* d = shared_window(dst, 16, "cp.async destination");
  if (dst % 16) fault("cp.async: destination 0x%x is not 16-byte aligned", dst);
  if (src_bytes != 0 && src_bytes != 16) fault("cp.async: %d source bytes", src_bytes);
  if (src_bytes && reinterpret_cast<uintptr_t>(src) % 16) fault("cp.async: source %p is not 16-byte aligned", src);
  CopyChunk c;
  c.dst = dst;
  if (src_bytes) std::memcpy(c.bytes, src, 16);
  else std::memset(c.bytes, 0, 16);
  std::memset(d, 0xff, 16);  // in flight: whoever reads it before the wait sees NaN
  r.threads[r.current].uncommitted.push_back(c);
}

void cp_async_commit() {
  Runner& r = running("cp.async.commit_group");
  Thread& t = r.threads[r.current];
  t.committed.push_back(std::move(t.uncommitted));
  t.uncommitted.clear();
}

void cp_async_wait(int pending_groups) {
  Runner& r = running("cp.async.wait_group");
  Thread& t = r.threads[r.current];
  while ((int)t.committed.size() > pending_groups) {
    for (const CopyChunk& c : t.committed.front()) std::memcpy(maskattn::gpu::dynamic_smem + c.dst, c.bytes, 16);
    t.committed.pop_front();
  }
}

}  // namespace cuda_host
