#include "large_output.h"

#include <ATen/ops/empty.h>

#include <cstdint>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace maskattn {
namespace {

constexpr uintptr_t kHugePage = uintptr_t(2) << 20;
// below this a result is a few huge pages at most, and likely served from memory already faulted in
constexpr size_t kAdviseBytes = size_t(16) << 20;

void advise_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHugePage - 1);
  if (end <= begin) return;
  // memory already faulted in (reused by the allocator) gains nothing: leave its mapping alone
  unsigned char resident = 0;
  if (mincore(reinterpret_cast<void*>(begin), 4096, &resident) == 0 && (resident & 1)) return;
  (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // advisory
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace

at::Tensor empty_large_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
  const size_t bytes = (size_t)out.nbytes();
  if (out.is_cpu() && bytes >= kAdviseBytes) advise_huge_pages(out.data_ptr(), bytes);
  return out;
}

}  // namespace maskattn
