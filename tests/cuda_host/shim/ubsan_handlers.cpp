// Handlers of the host build's -fsanitize=alignment,bounds checks (no sanitizer runtime is
// linked): a misaligned access faults on a GPU ("misaligned address"), and an index past a
// fixed-size array (a fragment, a static shared array) is a bug anywhere.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "block_runner.h"
#include "host_gpu.h"

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
  if (cuda_host::in_kernel())
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
