// softmax.cpp — row-wise softmax (see softmax.h).
#include "softmax.h"

namespace lstmfast {

template <typename S>
void softmax_rows(const S* x, Index rows, Index n, S* y) {
  constexpr Index kRows = 16;   // rows per tile
  constexpr Index kChunk = 64;  // values exponentiated at a time, in an aligned buffer
  using Chunk = Eigen::Array<S, kChunk, 1>;
  parallel_for_tiles((rows + kRows - 1) / kRows, [&](Index t) {
    // The exponentials go through an aligned buffer of fixed size, so every value takes the same
    // vector path wherever the caller's rows start (Eigen's scalar and packet exp differ in the
    // last bit): the results depend on the values alone.
    alignas(64) S buf[kChunk];
    Eigen::Map<Chunk, Eigen::Aligned64> chunk(buf);
    for (Index r = t * kRows; r < std::min(rows, (t + 1) * kRows); ++r) {
      const S* xr = x + r * n;
      S* yr = y + r * n;
      const S m = CArrMap<S>(xr, n).maxCoeff();  // m_r
      S sum = 0;
      for (Index c0 = 0; c0 < n; c0 += kChunk) {
        const Index w = std::min(kChunk, n - c0);
        for (Index j = 0; j < kChunk; ++j) buf[j] = j < w ? xr[c0 + j] - m : S(0);
        chunk = chunk.exp();  // e_j = exp(x_j − m_r)
        for (Index j = 0; j < w; ++j) {
          yr[c0 + j] = buf[j];
          sum += buf[j];  // Σ_k e_k, in the order of k
        }
      }
      ArrMap<S>(yr, n) *= S(1) / sum;  // y_j = e_j / Σ_k e_k
    }
  });
}

template void softmax_rows<float>(const float*, Index, Index, float*);
template void softmax_rows<double>(const double*, Index, Index, double*);

}  // namespace lstmfast
