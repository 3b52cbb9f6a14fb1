// Scratch memory of the CPU kernels, kept across calls.
//
// Large blocks (packed K/V, fp32 copies of q and dout, the backward's dQ accumulators) would
// otherwise be fresh pages on every call: each call would pay for faulting them in, often more
// than the kernel itself when the allocator hands memory back to the OS. Freed blocks go to a
// process-wide pool (sharded by OpenMP thread number, so a parallel region never waits on a lock)
// and the next call of a similar size takes them back. Thread-safe: a block
// belongs to one caller from acquire to release; calls from several threads get distinct blocks.
#pragma once
#include <cstddef>

namespace maskattn {
namespace cpu {

// At least `bytes` bytes, 64-byte aligned, contents undefined.
void* acquire_scratch(size_t bytes, size_t* capacity);
// Returns a block from acquire_scratch (capacity as acquire_scratch reported it).
void release_scratch(void* p, size_t capacity);
// Frees every pooled block (memory pressure, tests); returns the bytes freed.
size_t trim_scratch();
// Bytes held in the pool right now (not counting blocks in use).
size_t pooled_scratch_bytes();

}  // namespace cpu
}  // namespace maskattn
