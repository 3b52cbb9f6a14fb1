// The host execution as torch ops (torch.ops.maskattn_cuda_host): every maskattn op again, running
// the CUDA kernels on CPU tensors (the binding code is the product's: route_ops_to_host.h); the
// modelled device's settings and the launch log; and the primitive probes. Only ops, no Python
// module: torch's Python headers would double the build time.
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <sstream>

#include "binding/cuda_support.h"
#include "binding/ops.h"
#include "host_gpu.h"
#include "probes.h"

namespace {

void check_probe(int err) { TORCH_CHECK(err == 0, probes::error_text(err)); }

at::Tensor probe_input(const at::Tensor& t, at::ScalarType dtype, at::IntArrayRef shape) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == dtype && t.sizes() == shape, "probe input: expected ", dtype,
              " of shape ", shape, ", got ", t.scalar_type(), " ", t.sizes());
  return t.contiguous();
}

template <typename T>
T* raw(const at::Tensor& t) {
  return reinterpret_cast<T*>(t.data_ptr());
}

void set_device(int64_t major, int64_t minor, int64_t max_smem_optin, int64_t kernel_ptx_arch) {
  auto& d = cuda_host::device_model();
  d.major = (int)major;
  d.minor = (int)minor;
  d.max_smem_optin = (int)max_smem_optin;
  d.kernel_ptx_arch = (int)kernel_ptx_arch;
  d.sms = cuda_host::DeviceModel().sms;  // the default (H100) until set_multiprocessors
}

void set_multiprocessors(int64_t sms) { cuda_host::device_model().sms = (int)sms; }

std::tuple<int64_t, int64_t, int64_t, int64_t> device() {
  const auto& d = cuda_host::device_model();
  return {d.major, d.minor, d.max_smem_optin, d.kernel_ptx_arch};
}

std::string take_launch_log() {
  std::ostringstream out;
  for (const std::string& name : cuda_host::take_launch_log()) out << name << "\n";
  return out.str();
}

void set_schedule_seed(int64_t seed) { cuda_host::set_schedule_seed((uint64_t)seed); }

int64_t opted_in_smem(std::string kernel) { return cuda_host::opted_in_smem(kernel); }

std::string attention_path(std::string dtype, int64_t head_dim, int64_t v_head_dim) {
  return maskattn::cuda_attention_path(dtype, head_dim, v_head_dim, -1);
}

at::Tensor probe_ldmatrix(const at::Tensor& rows_in, const at::Tensor& row_of_lane_in, bool trans) {
  const at::Tensor rows = probe_input(rows_in, at::kShort, {32, 8});
  const at::Tensor row_of_lane = probe_input(row_of_lane_in, at::kInt, {32});
  at::Tensor regs = at::empty({32, 4}, at::kInt);
  check_probe(probes::ldmatrix_x4(raw<uint16_t>(rows), raw<int32_t>(row_of_lane), trans, raw<uint32_t>(regs)));
  return regs;
}

at::Tensor probe_mma(const at::Tensor& a_in, const at::Tensor& b_in, const at::Tensor& c_in, bool bf16) {
  const at::Tensor a = probe_input(a_in, at::kInt, {32, 4}), b = probe_input(b_in, at::kInt, {32, 2});
  const at::Tensor c = probe_input(c_in, at::kFloat, {32, 4});
  at::Tensor d = at::empty({32, 4}, at::kFloat);
  check_probe(probes::mma_m16n8k16(raw<uint32_t>(a), raw<uint32_t>(b), raw<float>(c), bf16, raw<float>(d)));
  return d;
}

std::tuple<at::Tensor, at::Tensor> probe_shuffle(int64_t mode, int64_t param, int64_t width) {
  at::Tensor out = at::empty({32}, at::kDouble), votes = at::empty({32, 3}, at::kInt);
  check_probe(probes::shuffle((int)mode, (int)param, (int)width, raw<double>(out), raw<uint32_t>(votes)));
  return {out, votes};
}

at::Tensor probe_cp_async(bool wait_before_reading) {
  at::Tensor out = at::empty({64 * 8}, at::kShort);
  check_probe(probes::cp_async(wait_before_reading, raw<uint16_t>(out)));
  return out;
}

at::Tensor probe_cross_warp_handoff(bool with_barrier) {
  at::Tensor out = at::empty({32}, at::kInt);
  check_probe(probes::cross_warp_handoff(with_barrier, raw<int32_t>(out)));
  return out;
}

void probe_cp_async_left_in_flight() { check_probe(probes::cp_async_left_in_flight()); }
void probe_divergent_barrier() { check_probe(probes::divergent_barrier()); }
void probe_divergent_shuffle() { check_probe(probes::divergent_shuffle()); }
void probe_collective_after_exit() { check_probe(probes::collective_after_exit()); }
void probe_misaligned_load() { check_probe(probes::misaligned_load()); }

at::Tensor half_bits(const at::Tensor& x_in) {
  const at::Tensor x = probe_input(x_in, at::kFloat, x_in.sizes());
  at::Tensor out = at::empty(x.sizes(), at::kShort);
  probes::to_half_bits(raw<float>(x), raw<uint16_t>(out), x.numel());
  return out;
}

at::Tensor bf16_bits(const at::Tensor& x_in) {
  const at::Tensor x = probe_input(x_in, at::kFloat, x_in.sizes());
  at::Tensor out = at::empty(x.sizes(), at::kShort);
  probes::to_bf16_bits(raw<float>(x), raw<uint16_t>(out), x.numel());
  return out;
}

}  // namespace

// Schemas are inferred from the functions, so the product ops follow any change of theirs.
TORCH_LIBRARY(maskattn_cuda_host, m) {
  m.def("attention_mask", &maskattn::attention_mask_op);
  m.def("padding_mask_from_ids", &maskattn::padding_mask_from_ids_op);
  m.def("random_token_mask", &maskattn::random_token_mask_op);
  m.def("masked_softmax", &maskattn::masked_softmax_op);
  m.def("masked_softmax_backward", &maskattn::masked_softmax_backward_op);
  m.def("masked_attention", &maskattn::masked_attention_op);
  m.def("masked_attention_backward", &maskattn::masked_attention_backward_op);

  m.def("set_device", &set_device);
  m.def("set_multiprocessors", &set_multiprocessors);
  m.def("device", &device);
  m.def("take_launch_log", &take_launch_log);
  m.def("set_schedule_seed", &set_schedule_seed);
  m.def("opted_in_smem", &opted_in_smem);
  m.def("attention_path", &attention_path);

  m.def("probe_ldmatrix", &probe_ldmatrix);
  m.def("probe_mma", &probe_mma);
  m.def("probe_shuffle", &probe_shuffle);
  m.def("probe_cp_async", &probe_cp_async);
  m.def("probe_cross_warp_handoff", &probe_cross_warp_handoff);
  m.def("probe_cp_async_left_in_flight", &probe_cp_async_left_in_flight);
  m.def("probe_divergent_barrier", &probe_divergent_barrier);
  m.def("probe_divergent_shuffle", &probe_divergent_shuffle);
  m.def("probe_collective_after_exit", &probe_collective_after_exit);
  m.def("probe_misaligned_load", &probe_misaligned_load);
  m.def("half_bits", &half_bits);
  m.def("bf16_bits", &bf16_bits);
}
