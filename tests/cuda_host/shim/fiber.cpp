// Fiber switching and stacks of fiber.h.
#include "fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace cuda_host {

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

void start_fiber(FiberContext& c, unsigned char* stack_lo, size_t size, void (*entry)()) {
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

void switch_fiber(FiberContext& from, FiberContext& to) { cuda_host_switch(&from.sp, to.sp); }
#else
void start_fiber(FiberContext& c, unsigned char* stack_lo, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack_lo;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}

void switch_fiber(FiberContext& from, FiberContext& to) { swapcontext(&from.uc, &to.uc); }
#endif

unsigned char* FiberStacks::get(int i) {
  while ((int)stacks_.size() <= i) {
    const long page = sysconf(_SC_PAGESIZE);
    void* p = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "host GPU: cannot map a fiber stack\n");
      std::abort();
    }
    mprotect(p, page, PROT_NONE);  // an overflow faults instead of corrupting the next stack
    stacks_.push_back(static_cast<unsigned char*>(p) + page);
  }
  return stacks_[i];
}

}  // namespace cuda_host
