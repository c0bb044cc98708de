// arrays.cpp — arrays joined and summed on the kernels' threads (arrays.h).
#include "arrays.h"

#include <algorithm>
#include <cstring>

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

template <typename S>
void concat_rows(Index outer, const std::vector<const S*>& x, const std::vector<Index>& inner, S* y) {
  Index width = 0;  // Σ_i inner_i
  for (Index n : inner) width += n;
  if (outer == 0 || width == 0) return;
  // Rows in tiles of about kTileBytes of output, each copied by one thread.
  constexpr Index kTileBytes = Index(64) << 10;
  const Index rows = std::max<Index>(1, kTileBytes / (width * Index(sizeof(S))));
  parallel_for_tiles((outer + rows - 1) / rows, [&](Index t) {
    const Index o1 = std::min(outer, (t + 1) * rows);
    for (Index o = t * rows; o < o1; ++o) {
      S* dst = y + o * width;
      for (size_t i = 0; i < x.size(); ++i) {
        std::memcpy(dst, x[i] + o * inner[i], sizeof(S) * inner[i]);  // y[o, off_i + j] = x_i[o, j]
        dst += inner[i];
      }
    }
  });
}

template <typename S>
void add_rows(Index rows, Index cols, const S* a, Index lda, const S* b, Index ldb, S* y) {
  if (rows == 0 || cols == 0) return;
  constexpr Index kTileBytes = Index(64) << 10;
  const Index per = std::max<Index>(1, kTileBytes / (cols * Index(sizeof(S))));
  parallel_for_tiles((rows + per - 1) / per, [&](Index t) {
    for (Index r = t * per; r < std::min(rows, (t + 1) * per); ++r)
      ArrMap<S>(y + r * cols, cols) = CArrMap<S>(a + r * lda, cols) + CArrMap<S>(b + r * ldb, cols);  // y = a + b
  });
}

template void add_rows<float>(Index, Index, const float*, Index, const float*, Index, float*);
template void add_rows<double>(Index, Index, const double*, Index, const double*, Index, double*);
template void concat_rows<float>(Index, const std::vector<const float*>&, const std::vector<Index>&, float*);
template void concat_rows<double>(Index, const std::vector<const double*>&, const std::vector<Index>&, double*);

LSTMFAST_NAMESPACE_END  // lstmfast
