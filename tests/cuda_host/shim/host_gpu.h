// The host GPU the shim headers stand on: blocks run one at a time on the calling OS thread, each
// CUDA thread a fiber. Fibers switch only at collectives (__syncthreads, warp shuffles, mma,
// ldmatrix), which are real rendezvous: a warp collective completes when every lane of its mask
// has arrived, a barrier when every thread of the block has. Warps are scheduled in a random
// order, each run until all its lanes wait at the block barrier, so one warp runs as far ahead
// of the others as the barriers allow; lanes resume in a random order. Misuse a GPU would punish
// (divergent barriers or collectives, a missing cp.async wait, shared addresses out of range)
// ends the launch with cudaErrorLaunchFailure and a message naming it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

struct dim3;
struct cudaLaunchConfig_st;

namespace cuda_host {

// What the modelled device reports; tests change it to reach each launch-side choice.
struct DeviceModel {
  int major = 9, minor = 0;
  int max_smem_optin = 232448;  // bytes of dynamic shared memory a block may opt into (H100)
  int kernel_ptx_arch = 90;     // cudaFuncGetAttributes(...).ptxVersion: the arch the kernels were built for
  int sms = 132;                // multiprocessors (H100 SXM)
  // Each kernel's static __shared__ bytes, as cudaFuncGetAttributes reports them: the host build
  // cannot measure them, so every kernel is taken to hold this much (about the row-statistics arrays)
  int static_smem = 1024;
};
DeviceModel& device_model();

// Upper bound of any device's opt-in shared memory: the size of the dynamic shared memory buffer.
constexpr size_t kDynamicSmemCapacity = 232448;

// Runs body(ctx) as every thread of every block of the launch. Returns the launch's error.
int launch(const void* kernel, const dim3& grid, const dim3& block, size_t smem_bytes, void (*body)(void*),
           void* ctx);
int set_func_max_dynamic_smem(const void* kernel, int bytes);
// The dynamic shared memory a kernel (by name, once launched) has opted into, -1 if none.
int opted_in_smem(const std::string& name);
int func_max_dynamic_smem(const void* kernel);
int take_last_error();
const char* error_string(int err);

// Demangled names of the kernels launched since the last call, in launch order.
std::vector<std::string> take_launch_log();
// Seed of the scheduling order of the next launches (each launch derives its own from it).
void set_schedule_seed(uint64_t seed);

// ---- inside a kernel ----
[[noreturn]] void fault(const char* format, ...);
void sync_block(const char* file, int line);

constexpr int kSlotBytes = 64;
struct WarpSlots {
  alignas(16) unsigned char in[32][kSlotBytes];
  alignas(16) unsigned char out[32][kSlotBytes];
};
// Computes every lane's `out` from every lane's `in` (lanes outside `mask` untouched).
using Combine = void (*)(WarpSlots& slots, unsigned mask);
// A warp collective: this lane's `in` is deposited, and its `out` returned once all lanes of
// `mask` have arrived at the same `op` (an identity: compared by address).
void warp_collective(const char* op, unsigned mask, const void* in, size_t in_bytes, void* out, size_t out_bytes,
                     Combine combine);
int lane_id();

// Shared memory window: the dynamic shared memory of the running block.
unsigned char* shared_window(uint32_t addr, size_t bytes, const char* what);
uint32_t shared_address(const void* p);

// cp.async: 16 bytes (src_bytes of them read, the rest zero) land at the shared address `dst`
// only when cp_async_wait lets them, and `dst` reads as NaN bytes until then.
void cp_async_16(uint32_t dst, const void* src, int src_bytes);
void cp_async_commit();
void cp_async_wait(int pending_groups);

}  // namespace cuda_host
