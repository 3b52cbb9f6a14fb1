// CPU keep mask of attention dropout, row by row with the attention kernels' generator.
#include "../dropout_mask.h"

#include <vector>

#include "attention_dropout.h"
#include "parallel_grain.h"

namespace maskattn {

void dropout_keep_mask_cpu(const DropoutSpec& d, int64_t batch, uint8_t* keep) {
  const int64_t rows = batch * d.heads * d.q_len;
  cpu::run_region(cpu::worth_parallel(rows, double(rows) * d.k_len), [&] {
    std::vector<float> row((size_t)d.k_len);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      cpu::dropout_row(d, (uint64_t)(r * d.k_len), d.k_len, 1.f, row.data());
      for (int64_t j = 0; j < d.k_len; ++j) keep[r * d.k_len + j] = row[j] != 0.f;
    }
  });
}

}  // namespace maskattn
