// Built instead of cuda_support.cpp when the CUDA kernels are not compiled.
#include <c10/util/Exception.h>

#include "cuda_support.h"

namespace maskattn {

bool built_with_cuda() { return false; }

void fail_without_cuda(const char* op) {
  TORCH_CHECK(false, op,
              ": got CUDA tensors, but maskattn was built without its CUDA kernels. Rebuild with a "
              "CUDA-enabled torch and nvcc on PATH: MASKATTN_CUDA=1 pip install --no-build-isolation "
              "--force-reinstall --no-deps maskattn (or `pip install -e .` in the source tree)");
}

void* current_cuda_stream(const c10::Device&) { fail_without_cuda("maskattn"); }

std::pair<uint64_t, uint64_t> cuda_philox_seed_offset(const std::optional<at::Generator>&, const c10::Device&,
                                                      uint64_t) {
  fail_without_cuda("maskattn");
}

std::string cuda_attention_path(const std::string&, int64_t, int64_t, int64_t) {
  fail_without_cuda("maskattn._C.cuda_attention_path");
}

}  // namespace maskattn
