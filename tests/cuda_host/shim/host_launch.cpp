// Launches on the host GPU (host_gpu.h): the checks a GPU makes before running a grid, the pool
// of OS threads that runs its blocks, and the runtime state behind cuda_runtime.h (the modelled
// device, kernel attributes, the last error, the launch log).
#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "block_runner.h"
#include "host_gpu.h"

namespace cuda_host {
namespace {

constexpr int kMaxThreads = 1024;
constexpr size_t kDefaultSmemLimit = 48 * 1024;  // above it a kernel must opt in

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

// One launch: its blocks are claimed one at a time by the pool's threads.
struct Job {
  BlockLaunch launch;
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
  for (uint64_t n; !job.failed && (n = job.next++) < job.blocks;) {
    const uint64_t b = job.order.empty() ? n : job.order[n];
    const std::string error = run_block(job.launch, b, job.seed ^ (0xbf58476d1ce4e5b9ull * (b + 1)));
    if (error.empty()) continue;
    const dim3& g = job.launch.grid;
    char where[160];
    std::snprintf(where, sizeof(where), " [block (%llu,%llu,%llu), schedule seed %llu]",
                  (unsigned long long)(b % g.x), (unsigned long long)(b / g.x % g.y),
                  (unsigned long long)(b / ((uint64_t)g.x * g.y)), (unsigned long long)job.seed);
    std::lock_guard<std::mutex> lock(job.error_mutex);
    if (!job.failed.exchange(true)) job.error = error + where;
  }
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
  if (bytes < 0 || bytes > g_device.max_smem_optin - g_device.static_smem) return cudaErrorInvalidValue;
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
  return it == g_max_dynamic_smem.end() ? (int)kDefaultSmemLimit - g_device.static_smem : it->second;
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
  if (in_kernel()) return fail_launch(cudaErrorLaunchFailure, name + ": launched from inside a kernel");
  const uint64_t threads = (uint64_t)block.x * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || block.z > 64)
    return fail_launch(cudaErrorInvalidConfiguration, name + ": " + std::to_string(threads) + " threads per block");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    return fail_launch(cudaErrorInvalidConfiguration,
                       name + ": grid " + std::to_string(grid.x) + "x" + std::to_string(grid.y) + "x" +
                           std::to_string(grid.z));
  const int allowed = func_max_dynamic_smem(kernel);
  // as CUDA: the 48 KB a block gets without opting in holds its static shared memory too
  if (smem_bytes > (size_t)allowed || smem_bytes + g_device.static_smem > (size_t)g_device.max_smem_optin)
    return fail_launch(cudaErrorInvalidValue, name + ": " + std::to_string(smem_bytes) +
                                                  " bytes of dynamic shared memory, the kernel allows " +
                                                  std::to_string(allowed));
  if (smem_bytes > kDynamicSmemCapacity) return fail_launch(cudaErrorInvalidValue, name + ": shared memory");

  if (g_seed == 0) g_seed = initial_seed();
  Job job;
  job.launch = BlockLaunch{grid, block, smem_bytes, body, ctx};
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

}  // namespace cuda_host
