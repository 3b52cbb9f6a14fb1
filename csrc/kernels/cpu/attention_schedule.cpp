#include "attention_schedule.h"

#include <algorithm>
#include <numeric>

namespace maskattn {
namespace cpu {

static void extend(TileSpan& s, int64_t t) {
  if (s.non_empty == 0) s.first = t;
  s.last = t;
  ++s.non_empty;
}

std::vector<TileSpan> key_spans_of_query_tiles(const MaskSpec& m, const AttentionGeometry& g) {
  std::vector<TileSpan> spans((size_t)(g.batch * g.q_tiles));
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t qt = 0; qt < g.q_tiles; ++qt)
      for (int64_t kt = 0; kt < g.k_tiles; ++kt)
        if (tile_state(m, g, b, qt, kt) != TileState::Empty) extend(spans[b * g.q_tiles + qt], kt);
  return spans;
}

std::vector<TileSpan> query_spans_of_key_tiles(const MaskSpec& m, const AttentionGeometry& g) {
  std::vector<TileSpan> spans((size_t)(g.batch * g.k_tiles));
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t kt = 0; kt < g.k_tiles; ++kt)
      for (int64_t qt = 0; qt < g.q_tiles; ++qt)
        if (tile_state(m, g, b, qt, kt) != TileState::Empty) extend(spans[b * g.k_tiles + kt], qt);
  return spans;
}

std::vector<int64_t> schedule_order(const std::vector<int64_t>& cost, int64_t group_size) {
  std::vector<int64_t> order(cost.size());
  std::iota(order.begin(), order.end(), 0);
  group_size = std::max<int64_t>(group_size, 1);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    const int64_t ga = a / group_size, gb = b / group_size;
    return ga != gb ? ga < gb : cost[a] > cost[b];
  });
  return order;
}

}  // namespace cpu
}  // namespace maskattn
