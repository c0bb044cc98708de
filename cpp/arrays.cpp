// arrays.cpp — arrays joined and summed on the kernels' threads (arrays.h).
#include "arrays.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

namespace {

// f(r) for every row r in [0, rows), in tiles of about 64 KB of output (row_bytes each) on the
// kernels' threads.
template <typename F>
void for_row_tiles(Index rows, Index row_bytes, F&& f) {
  constexpr Index kTileBytes = Index(64) << 10;
  const Index per = std::max<Index>(1, kTileBytes / std::max<Index>(1, row_bytes));
  parallel_for_runs((rows + per - 1) / per, [&](Index t) {
    for (Index r = t * per; r < std::min(rows, (t + 1) * per); ++r) f(r);
  });
}

}  // namespace

template <typename S>
void concat_rows(Index outer, const std::vector<const S*>& x, const std::vector<Index>& inner, S* y) {
  Index width = 0;  // Σ_i inner_i
  for (Index n : inner) width += n;
  if (width == 0) return;
  for_row_tiles(outer, width * Index(sizeof(S)), [&](Index o) {
    S* dst = y + o * width;
    for (size_t i = 0; i < x.size(); ++i) {
      std::memcpy(dst, x[i] + o * inner[i], sizeof(S) * inner[i]);  // y[o, off_i + j] = x_i[o, j]
      dst += inner[i];
    }
  });
}

template <typename S>
void add_rows(Index rows, Index cols, const S* a, Index lda, const S* b, Index ldb, S* y) {
  if (cols == 0) return;
  for_row_tiles(rows, cols * Index(sizeof(S)), [&](Index r) {
    ArrMap<S>(y + r * cols, cols) = CArrMap<S>(a + r * lda, cols) + CArrMap<S>(b + r * ldb, cols);  // y = a + b
  });
}

template <typename S>
void column_sums(Index rows, Index cols, const S* a, S* y) {
  if (cols == 0) return;
  // Blocks of rows, each summed in order on one thread into its own row of partial sums.
  constexpr Index kSumBlock = 256;
  const Index nb = std::max<Index>(1, (rows + kSumBlock - 1) / kSumBlock);
  std::vector<S> partial(nb * cols);
  parallel_for_runs(nb, [&](Index blk) {
    ArrMap<S> acc(partial.data() + blk * cols, cols);
    acc.setZero();
    for (Index r = blk * kSumBlock; r < std::min(rows, (blk + 1) * kSumBlock); ++r) acc += CArrMap<S>(a + r * cols, cols);
  });
  ArrMap<S> sum(y, cols);  // y = Σ_blk partial_blk, in block order
  sum = CArrMap<S>(partial.data(), cols);
  for (Index blk = 1; blk < nb; ++blk) sum += CArrMap<S>(partial.data() + blk * cols, cols);
}

template void add_rows<float>(Index, Index, const float*, Index, const float*, Index, float*);
template void add_rows<double>(Index, Index, const double*, Index, const double*, Index, double*);
template void column_sums<float>(Index, Index, const float*, float*);
template void column_sums<double>(Index, Index, const double*, double*);
template void concat_rows<float>(Index, const std::vector<const float*>&, const std::vector<Index>&, float*);
template void concat_rows<double>(Index, const std::vector<const double*>&, const std::vector<Index>&, double*);

LSTMFAST_NAMESPACE_END  // lstmfast
