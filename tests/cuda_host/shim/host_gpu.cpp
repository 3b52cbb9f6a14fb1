// The host GPU of host_gpu.h: fibers, the scheduler, barriers, warp collectives, cp.async queues,
// launches and the runtime state behind the cuda_runtime.h stand-ins.
#include "host_gpu.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "cuda_runtime.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace maskattn {
namespace gpu {
// cuda_common.cuh declares it `extern __shared__`: the running block's dynamic shared memory.
thread_local __attribute__((aligned(128))) unsigned char dynamic_smem[cuda_host::kDynamicSmemCapacity];
}  // namespace gpu
}  // namespace maskattn

namespace cuda_host {
namespace {

// ---- fiber switching: callee-saved registers and the FP control words, nothing else ----
#if defined(__x86_64__)
extern "C" void cuda_host_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl cuda_host_switch
  .hidden cuda_host_switch
  .type cuda_host_switch,@function
cuda_host_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cuda_host_switch,.-cuda_host_switch
)");

struct Context {
  void* sp = nullptr;
};

void start_context(Context& c, unsigned char* stack_lo, size_t size, void (*entry)()) {
  const uintptr_t top = (uintptr_t)(stack_lo + size) & ~uintptr_t(15);
  // 8 bytes of control words, 6 registers, the return address; `ret` then leaves the stack as a
  // call would (16-byte aligned plus the return address slot).
  uint64_t* sp = reinterpret_cast<uint64_t*>(top - 72);
  uint32_t mxcsr;
  uint16_t fcw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fcw));
  sp[0] = mxcsr | ((uint64_t)fcw << 32);
  for (int i = 1; i <= 6; ++i) sp[i] = 0;
  sp[7] = reinterpret_cast<uint64_t>(entry);
  c.sp = sp;
}

inline void switch_context(Context& from, Context& to) { cuda_host_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};

void start_context(Context& c, unsigned char* stack_lo, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack_lo;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}

inline void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

constexpr size_t kStackBytes = 256 * 1024;
constexpr int kMaxThreads = 1024;
constexpr size_t kDefaultSmemLimit = 48 * 1024;  // above it a kernel must opt in

enum class State : uint8_t { Ready, WaitWarp, WaitBarrier, Exited };

struct CopyChunk {
  uint32_t dst;
  unsigned char bytes[16];
};

struct Thread {
  Context context;
  State state = State::Ready;
  std::vector<CopyChunk> uncommitted;
  std::deque<std::vector<CopyChunk>> committed;
};

struct Warp {
  const char* op = nullptr;
  unsigned mask = 0, arrived = 0, exited = 0;
  WarpSlots slots;
};

// One OS thread's running block; blocks of a launch run one after another.
struct Runner {
  std::vector<unsigned char*> stacks;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  Context scheduler;
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
  bool in_launch = false;
};

thread_local Runner t_runner;
thread_local int t_last_error = cudaSuccess;
thread_local std::string t_error_text;

std::mutex g_mutex;  // guards the state below, shared by every OS thread
std::map<const void*, int> g_max_dynamic_smem;
std::map<const void*, std::string>& kernel_names() {  // of every kernel launched so far
  static std::map<const void*, std::string> names;
  return names;
}
std::vector<std::string> g_launch_log;
std::atomic<uint64_t> g_seed{0}, g_launches{0};
DeviceModel g_device;

uint64_t initial_seed() {
  if (const char* env = std::getenv("MASKATTN_HOST_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
}

unsigned char* fiber_stack(Runner& r, int i) {
  while ((int)r.stacks.size() <= i) {
    const long page = sysconf(_SC_PAGESIZE);
    void* p = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "host GPU: cannot map a fiber stack\n");
      std::abort();
    }
    mprotect(p, page, PROT_NONE);  // overflow faults instead of corrupting the next stack
    r.stacks.push_back(static_cast<unsigned char*>(p) + page);
  }
  return r.stacks[i];
}

void set_thread_index(Runner& r, int i) {
  threadIdx.x = i % r.block.x;
  threadIdx.y = (i / r.block.x) % r.block.y;
  threadIdx.z = i / (r.block.x * r.block.y);
}

void resume(Runner& r, int i) {
  r.current = i;
  set_thread_index(r, i);
  switch_context(r.scheduler, r.threads[i].context);
  r.current = -1;
}

void yield(Runner& r) { switch_context(r.threads[r.current].context, r.scheduler); }

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

void run_block(Runner& r) {
  for (int i = 0; i < r.count; ++i) {
    Thread& t = r.threads[i];
    t.state = State::Ready;
    t.uncommitted.clear();
    t.committed.clear();
    start_context(t.context, fiber_stack(r, i), kStackBytes, &fiber_entry);
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

// Name of the function at `offset` in the ELF file `path`, from its full symbol table (kernels in
// anonymous namespaces are not in the dynamic one dladdr reads).
std::string symtab_name(const char* path, uintptr_t offset) {
  FILE* f = std::fopen(path, "rb");
  if (!f) return "";
  std::vector<unsigned char> file;
  unsigned char chunk[1 << 16];
  for (size_t n; (n = std::fread(chunk, 1, sizeof(chunk), f)) > 0;) file.insert(file.end(), chunk, chunk + n);
  std::fclose(f);
  if (file.size() < sizeof(Elf64_Ehdr)) return "";
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(file.data());
  const auto* sections = reinterpret_cast<const Elf64_Shdr*>(file.data() + eh->e_shoff);
  for (int i = 0; i < eh->e_shnum; ++i) {
    if (sections[i].sh_type != SHT_SYMTAB) continue;
    const auto* syms = reinterpret_cast<const Elf64_Sym*>(file.data() + sections[i].sh_offset);
    const char* names = reinterpret_cast<const char*>(file.data() + sections[sections[i].sh_link].sh_offset);
    for (size_t k = 0; k < sections[i].sh_size / sizeof(Elf64_Sym); ++k)
      if (ELF64_ST_TYPE(syms[k].st_info) == STT_FUNC && syms[k].st_value <= offset &&
          offset < syms[k].st_value + std::max<uint64_t>(syms[k].st_size, 1))
        return names + syms[k].st_name;
  }
  return "";
}

std::string kernel_name(const void* kernel) {
  Dl_info info;
  std::string symbol;
  if (dladdr(kernel, &info)) {
    if (info.dli_sname) symbol = info.dli_sname;
    else if (info.dli_fname)
      symbol = symtab_name(info.dli_fname, reinterpret_cast<uintptr_t>(kernel) - reinterpret_cast<uintptr_t>(info.dli_fbase));
  }
  if (!symbol.empty()) {
    int status = 0;
    char* demangled = abi::__cxa_demangle(symbol.c_str(), nullptr, nullptr, &status);
    std::string name = status == 0 && demangled ? demangled : symbol;
    std::free(demangled);
    // "void ns::kernel<T, 64>(params...)" -> "ns::kernel<T, 64>"
    if (name.rfind("void ", 0) == 0) name = name.substr(5);
    for (size_t at; (at = name.find("(anonymous namespace)::")) != std::string::npos;) name.erase(at, 23);
    int depth = 0;
    for (size_t i = 0; i < name.size(); ++i) {
      if (name[i] == '<') ++depth;
      if (name[i] == '>') --depth;
      if (name[i] == '(' && depth == 0) return name.substr(0, i);
    }
    return name;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "kernel@%p", kernel);
  return buf;
}

int fail_launch(int err, const std::string& text) {
  t_last_error = err;
  t_error_text = text;
  return err;
}

Runner& running(const char* what) {
  Runner& r = t_runner;
  if (r.current < 0) {
    std::fprintf(stderr, "host GPU: %s outside a kernel\n", what);
    std::abort();
  }
  return r;
}

// One launch: its blocks are claimed one at a time by the pool's threads.
struct Job {
  dim3 grid, block;
  size_t smem_bytes = 0;
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  uint64_t seed = 0, blocks = 0;
  std::vector<uint64_t> order;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::string error;
};

// Runs the job's blocks on this OS thread until none is left; each block's schedule comes from
// the launch seed and the block's index, whichever thread runs it.
void work(Job& job) {
  Runner& r = t_runner;
  r.count = (int)(job.block.x * job.block.y * job.block.z);
  r.warp_count = (r.count + 31) / 32;
  if ((int)r.threads.size() < r.count) r.threads.resize(r.count);
  if ((int)r.warps.size() < r.warp_count) r.warps.resize(r.warp_count);
  r.block = job.block;
  r.body = job.body;
  r.ctx = job.ctx;
  r.smem_bytes = job.smem_bytes;
  blockDim = job.block;
  gridDim = job.grid;
  r.in_launch = true;
  for (uint64_t n; !job.failed && (n = job.next++) < job.blocks;) {
    const uint64_t b = job.order.empty() ? n : job.order[n];
    blockIdx.x = (unsigned)(b % job.grid.x);
    blockIdx.y = (unsigned)((b / job.grid.x) % job.grid.y);
    blockIdx.z = (unsigned)(b / ((uint64_t)job.grid.x * job.grid.y));
    r.failed = false;
    r.error.clear();
    r.rng.seed(job.seed ^ (0xbf58476d1ce4e5b9ull * (b + 1)));
    run_block(r);
    if (r.failed) {
      char where[160];
      std::snprintf(where, sizeof(where), " [block (%u,%u,%u), schedule seed %llu]", blockIdx.x, blockIdx.y,
                    blockIdx.z, (unsigned long long)job.seed);
      std::lock_guard<std::mutex> lock(job.error_mutex);
      if (!job.failed.exchange(true)) job.error = r.error + where;
    }
  }
  r.in_launch = false;
}

// The OS threads that run blocks side by side (blocks never share memory but global memory):
// MASKATTN_HOST_THREADS of them (default: every core), the launching thread one of them.
class Pool {
 public:
  Pool() {
    const char* env = std::getenv("MASKATTN_HOST_THREADS");
    const int n = env ? std::atoi(env) : (int)std::thread::hardware_concurrency();
    for (int i = 1; i < std::min(std::max(n, 1), 16); ++i) std::thread([this] { serve(); }).detach();
  }

  void run(Job& job) {
    std::unique_lock<std::mutex> lock(mutex_);  // one launch at a time uses the helpers
    {
      std::lock_guard<std::mutex> state(state_mutex_);
      job_ = &job;
      ++generation_;
    }
    wake_.notify_all();
    work(job);
    std::unique_lock<std::mutex> state(state_mutex_);
    idle_.wait(state, [this] { return busy_ == 0; });
    job_ = nullptr;
  }

 private:
  void serve() {
    uint64_t seen = 0;
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> state(state_mutex_);
        wake_.wait(state, [&] { return generation_ != seen && job_ != nullptr; });
        seen = generation_;
        job = job_;
        ++busy_;
      }
      work(*job);
      std::lock_guard<std::mutex> state(state_mutex_);
      if (--busy_ == 0) idle_.notify_all();
    }
  }

  std::mutex mutex_, state_mutex_;
  std::condition_variable wake_, idle_;
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  int busy_ = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: its threads wait for work until the process ends
  return *p;
}

}  // namespace

DeviceModel& device_model() { return g_device; }

void set_schedule_seed(uint64_t seed) {
  g_seed = seed;
  g_launches = 0;
}

std::vector<std::string> take_launch_log() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<std::string> out;
  out.swap(g_launch_log);
  return out;
}

int set_func_max_dynamic_smem(const void* kernel, int bytes) {
  if (bytes < 0 || bytes > g_device.max_smem_optin) return cudaErrorInvalidValue;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_max_dynamic_smem[kernel] = bytes;
  return cudaSuccess;
}

int opted_in_smem(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (const auto& [kernel, known] : kernel_names())
    if (known == name) {
      auto it = g_max_dynamic_smem.find(kernel);
      return it == g_max_dynamic_smem.end() ? -1 : it->second;
    }
  return -1;
}

int func_max_dynamic_smem(const void* kernel) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_max_dynamic_smem.find(kernel);
  return it == g_max_dynamic_smem.end() ? (int)kDefaultSmemLimit : it->second;
}

int take_last_error() {
  const int err = t_last_error;
  t_last_error = cudaSuccess;
  return err;
}

const char* error_string(int err) {
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return t_error_text.empty() ? "invalid argument" : t_error_text.c_str();
    case cudaErrorInvalidConfiguration:
      return t_error_text.empty() ? "invalid configuration argument" : t_error_text.c_str();
    case cudaErrorLaunchFailure: return t_error_text.c_str();
    default: return "unknown error";
  }
}

int launch(const void* kernel, const dim3& grid, const dim3& block, size_t smem_bytes, void (*body)(void*),
           void* ctx) {
  std::string name;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto& names = kernel_names();
    auto it = names.find(kernel);
    if (it == names.end()) it = names.emplace(kernel, kernel_name(kernel)).first;
    name = it->second;
    g_launch_log.push_back(name);
  }
  if (t_runner.in_launch) return fail_launch(cudaErrorLaunchFailure, name + ": launched from inside a kernel");
  const uint64_t threads = (uint64_t)block.x * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || block.z > 64)
    return fail_launch(cudaErrorInvalidConfiguration, name + ": " + std::to_string(threads) + " threads per block");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    return fail_launch(cudaErrorInvalidConfiguration,
                       name + ": grid " + std::to_string(grid.x) + "x" + std::to_string(grid.y) + "x" +
                           std::to_string(grid.z));
  const int allowed = func_max_dynamic_smem(kernel);
  if (smem_bytes > kDefaultSmemLimit && (smem_bytes > (size_t)allowed || smem_bytes > (size_t)g_device.max_smem_optin))
    return fail_launch(cudaErrorInvalidValue, name + ": " + std::to_string(smem_bytes) +
                                                  " bytes of dynamic shared memory, the kernel allows " +
                                                  std::to_string(allowed));
  if (smem_bytes > kDynamicSmemCapacity) return fail_launch(cudaErrorInvalidValue, name + ": shared memory");

  if (g_seed == 0) g_seed = initial_seed();
  Job job;
  job.grid = grid;
  job.block = block;
  job.smem_bytes = smem_bytes;
  job.body = body;
  job.ctx = ctx;
  job.seed = g_seed.load() + 0x9e3779b97f4a7c15ull * (g_launches++);
  job.blocks = (uint64_t)grid.x * grid.y * grid.z;
  if (job.blocks <= (1u << 20)) {  // blocks in a random order: none may rely on another having run
    job.order.resize(job.blocks);
    for (uint64_t i = 0; i < job.blocks; ++i) job.order[i] = i;
    std::mt19937_64 rng(job.seed);
    std::shuffle(job.order.begin(), job.order.end(), rng);
  }
  pool().run(job);
  if (job.failed)
    return fail_launch(cudaErrorLaunchFailure, "unspecified launch failure (host execution of " + name + ": " + job.error + ")");
  return cudaSuccess;
}

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

// The host build compiles with -fsanitize=alignment,bounds and no sanitizer runtime: these are the
// handlers its checks call. A misaligned access is a fault on the GPU ("misaligned address"), and
// an index past a fixed-size array (a fragment, a static shared array) is a bug anywhere.
namespace {
struct SourceLocation {
  const char* file;
  uint32_t line, column;
};
struct TypeMismatchData {
  SourceLocation loc;
  const void* type;
  unsigned char log_alignment;
  unsigned char type_check_kind;
};
struct OutOfBoundsData {
  SourceLocation loc;
  const void* array_type;
  const void* index_type;
};

[[noreturn]] void sanitizer_fault(const char* what, const SourceLocation& loc, unsigned long long value) {
  if (cuda_host::t_runner.current >= 0)
    cuda_host::fault("%s (0x%llx) at %s:%u", what, value, loc.file, loc.line);
  std::fprintf(stderr, "host GPU: %s (0x%llx) at %s:%u, outside a kernel\n", what, value, loc.file, loc.line);
  std::abort();
}
}  // namespace

extern "C" {
__attribute__((visibility("hidden"))) void __ubsan_handle_type_mismatch_v1(TypeMismatchData* data, uintptr_t pointer) {
  char what[96];
  std::snprintf(what, sizeof(what), "misaligned address for a %d-byte aligned access", 1 << data->log_alignment);
  sanitizer_fault(pointer ? what : "null pointer access", data->loc, pointer);
}
__attribute__((visibility("hidden"))) void __ubsan_handle_type_mismatch_v1_abort(TypeMismatchData* data,
                                                                                  uintptr_t pointer) {
  __ubsan_handle_type_mismatch_v1(data, pointer);
}
__attribute__((visibility("hidden"))) void __ubsan_handle_out_of_bounds(OutOfBoundsData* data, uintptr_t index) {
  sanitizer_fault("index out of the bounds of an array", data->loc, index);
}
__attribute__((visibility("hidden"))) void __ubsan_handle_out_of_bounds_abort(OutOfBoundsData* data,
                                                                               uintptr_t index) {
  __ubsan_handle_out_of_bounds(data, index);
}
}
