// The ops called from Python through the dispatcher's typed entry, below the autograd key.
//
// torch.ops' generic Python entry parses the arguments against the schema into a boxed stack and
// unboxes them again (~5 us a call for an op of 18 arguments, more than a decoding step's kernel);
// pybind's casters and a typed call cost ~0.5 us. The dispatcher still runs every key below
// autograd (Python modes, fake tensors, functorch batching, the profiler), so only
// __torch_function__ is left out: the Python caller uses these only when no argument or mode has
// one, and only when no gradient is needed.
#include "below_autograd_calls.h"

#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include <utility>

#include "ops.h"

namespace maskattn {
namespace {

struct AllOutputs {
  template <typename T>
  T operator()(T&& outputs) const {
    return std::forward<T>(outputs);
  }
};

template <typename Fn>
struct BelowAutograd;

template <typename Ret, typename... Args>
struct BelowAutograd<Ret(Args...)> {
  // A callable for pybind: the typed handle of `name`, called with autograd's keys excluded, its
  // result passed through `pick`.
  template <typename Pick>
  static auto call_of(const char* name, Pick pick) {
    auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Ret(Args...)>();
    return [op, pick](Args... args) {
      at::AutoDispatchBelowAutograd below_autograd;
      return pick(op.call(std::forward<Args>(args)...));
    };
  }
};

template <typename Fn, typename Pick = AllOutputs>
void def_below_autograd(pybind11::module_& m, const char* py_name, const char* op_name, Pick pick = {}) {
  // the kernel can run long: other Python threads go on meanwhile (the dispatcher retakes the GIL
  // where a Python mode needs it)
  m.def(py_name, BelowAutograd<Fn>::call_of(op_name, pick), pybind11::call_guard<pybind11::gil_scoped_release>());
}

}  // namespace

void add_below_autograd_calls(pybind11::module_& m) {
  auto calls = m.def_submodule("below_autograd", "maskattn ops called below the autograd key (no gradient recorded)");
  def_below_autograd<decltype(masked_attention_op)>(calls, "masked_attention", "maskattn::masked_attention");
  // the output alone, for calls that asked for neither weights nor lse: Python wraps (and its
  // garbage collector counts) one tensor, not five
  def_below_autograd<decltype(masked_attention_op)>(calls, "masked_attention_output", "maskattn::masked_attention",
                                                    [](auto&& outputs) { return std::get<0>(std::move(outputs)); });
  def_below_autograd<decltype(masked_attention_backward_op)>(calls, "masked_attention_backward",
                                                              "maskattn::masked_attention_backward");
  def_below_autograd<decltype(masked_softmax_op)>(calls, "masked_softmax", "maskattn::masked_softmax");
  def_below_autograd<decltype(masked_softmax_backward_op)>(calls, "masked_softmax_backward",
                                                            "maskattn::masked_softmax_backward");
}

}  // namespace maskattn
