// The _C Python module: importing it loads the op library; build_info() says what was compiled.
#include <pybind11/pybind11.h>

#include "cuda_support.h"

#ifndef MASKATTN_VERSION
#define MASKATTN_VERSION "unknown"
#endif
#ifndef MASKATTN_CUDA_ARCHS
#define MASKATTN_CUDA_ARCHS ""
#endif

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "maskattn compiled kernels (ops are registered under torch.ops.maskattn)";
  m.def("build_info", []() {
    py::dict info;
    info["version"] = MASKATTN_VERSION;
    py::list backends;
    backends.append("cpu");
    if (maskattn::built_with_cuda()) backends.append("cuda");
    info["backends"] = backends;
    info["cuda_archs"] = maskattn::built_with_cuda() ? MASKATTN_CUDA_ARCHS : "";
    return info;
  });
  m.def("cuda_attention_path", &maskattn::cuda_attention_path, py::arg("dtype"), py::arg("head_dim"),
        py::arg("v_head_dim"), py::arg("device") = -1,
        "Which CUDA attention kernels run for this dtype and these head sizes: 'tensor_cores' or 'simt' "
        "(float32 math, slower). Rows 16-byte aligned (contiguous q/k/v); device -1 is the current one.");
}
