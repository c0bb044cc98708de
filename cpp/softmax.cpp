// softmax.cpp — softmax over rows and element-wise activations (see softmax.h).
#include "softmax.h"

#include "activations.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

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

template <typename S>
void activation_values(int code, const S* x, Index n, S* y) {
  constexpr Index kTile = 1 << 14;  // values per tile: a multiple of every packet size
  parallel_for_tiles((n + kTile - 1) / kTile, [&](Index t) {
    const Index a = t * kTile, w = std::min(kTile, n - a);
    if (code == kHardSigmoidCode) {
      // clip(x/6 + 1/2, 0, 1), as the LSTM's recurrent activation computes it
      activations::activate_span(RecurrentActivation::HardSigmoid, y + a, x + a, w);
    } else {
      activations::activate_span(static_cast<Activation>(code), y + a, x + a, w);
    }
  });
}

template void softmax_rows<float>(const float*, Index, Index, float*);
template void softmax_rows<double>(const double*, Index, Index, double*);
template void activation_values<float>(int, const float*, Index, float*);
template void activation_values<double>(int, const double*, Index, double*);

LSTMFAST_NAMESPACE_END  // lstmfast
