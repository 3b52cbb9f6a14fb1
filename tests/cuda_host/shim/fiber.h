// Fibers for the host GPU: a saved context per CUDA thread, switched by hand (callee-saved
// registers and the FP control words on x86-64, ucontext elsewhere), on stacks kept per OS thread.
#pragma once
#include <cstddef>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace cuda_host {

struct FiberContext {
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
};

// Prepares `c` to run entry() (which must never return) on the stack [stack_lo, stack_lo + size).
void start_fiber(FiberContext& c, unsigned char* stack_lo, size_t size, void (*entry)());
// Saves the running context into `from` and resumes `to`; returns when something resumes `from`.
void switch_fiber(FiberContext& from, FiberContext& to);

// Stacks of kStackBytes, each above a guard page, mapped on first use and kept for reuse.
class FiberStacks {
 public:
  static constexpr size_t kStackBytes = 256 * 1024;
  unsigned char* get(int i);

 private:
  std::vector<unsigned char*> stacks_;
};

}  // namespace cuda_host
