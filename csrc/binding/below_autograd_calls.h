// Typed calls of the ops below the autograd key, for Python's eager calls that need no gradient.
#pragma once
#include <pybind11/pybind11.h>

namespace maskattn {

// Adds _C.below_autograd: one function per op with the op's arguments, all positional.
void add_below_autograd_calls(pybind11::module_& m);

}  // namespace maskattn
