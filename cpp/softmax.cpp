// softmax.cpp — softmax over rows and element-wise activations (see softmax.h).
#include "softmax.h"

#include <algorithm>
#include <cmath>

#include "activations.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

namespace {

constexpr Index kRows = 16;   // rows per tile
constexpr Index kChunk = 64;  // values per aligned chunk

// Σ_j x_j over n values, through aligned chunks of fixed size: kChunk running sums (one per
// position in a chunk), then the chunk's sum, so the result depends on the values alone, not
// on where the caller's row starts (a vectorised sum over an unaligned row peels its head).
template <typename S>
S chunked_sum(const S* x, Index n) {
  using Chunk = Eigen::Array<S, kChunk, 1>;
  alignas(64) S buf[kChunk];
  Eigen::Map<Chunk, Eigen::Aligned64> chunk(buf);
  Chunk acc = Chunk::Zero();
  for (Index c0 = 0; c0 < n; c0 += kChunk) {
    const Index w = std::min(kChunk, n - c0);
    for (Index j = 0; j < kChunk; ++j) buf[j] = j < w ? x[c0 + j] : S(0);
    acc += chunk;
  }
  return acc.sum();
}

// f(r) for every row r in [0, rows), tiles of kRows rows on the kernels' threads.
template <typename F>
void parallel_for_rows(Index rows, F&& f) {
  parallel_for_tiles((rows + kRows - 1) / kRows, [&](Index t) {
    for (Index r = t * kRows; r < std::min(rows, (t + 1) * kRows); ++r) f(r);
  });
}

}  // namespace

template <typename S>
void softmax_row(const S* xr, Index n, S* yr) {
  // The exponentials go through an aligned buffer of fixed size, so every value takes the same
  // vector path wherever the caller's rows start (Eigen's scalar and packet exp differ in the
  // last bit), and so does their sum (kChunk running sums): the results depend on the values
  // alone.
  using Chunk = Eigen::Array<S, kChunk, 1>;
  alignas(64) S buf[kChunk];
  Eigen::Map<Chunk, Eigen::Aligned64> chunk(buf);
  const S m = CArrMap<S>(xr, n).maxCoeff();  // m_r (exact in any order)
  Chunk acc = Chunk::Zero();
  for (Index c0 = 0; c0 < n; c0 += kChunk) {
    const Index w = std::min(kChunk, n - c0);
    for (Index j = 0; j < kChunk; ++j) buf[j] = j < w ? xr[c0 + j] - m : S(0);
    chunk = chunk.exp();  // e_j = exp(x_j − m_r)
    for (Index j = w; j < kChunk; ++j) buf[j] = S(0);
    std::copy(buf, buf + w, yr + c0);
    acc += chunk;
  }
  ArrMap<S>(yr, n) *= S(1) / acc.sum();  // y_j = e_j / Σ_k e_k
}

template <typename S>
void softmax_rows(const S* x, Index rows, Index n, S* y) {
  parallel_for_rows(rows, [&](Index r) { softmax_row(x + r * n, n, y + r * n); });
}

template <typename S>
void xent_softmax_sparse(const S* p, const int64_t* labels, const S* g, Index rows, Index n, S eps, S* values,
                         S* grad) {
  parallel_for_rows(rows, [&](Index r) {
    const S* pr = p + r * n;
    const Index y = static_cast<Index>(labels[r]);
    const S s = chunked_sum(pr, n);                           // Σ_j p_j
    const S qy = pr[y] / s;                                   // q_y = p_y / Σp
    values[r] = -std::log(std::clamp(qy, eps, S(1) - eps));  // −log clip(q_y, ε, 1 − ε)
    const S gi = (qy >= eps && qy <= S(1) - eps) ? g[r] : S(0);  // g_r · inside_y
    ArrMap<S> dz(grad + r * n, n);
    if (gi == S(0)) {
      dz.setZero();
      return;
    }
    dz = CArrMap<S>(pr, n) / s * gi;  // ∂L/∂z_j = g_r · q_j
    dz[y] = (qy - S(1)) * gi;         //         − g_r at j = y
  });
}

template <typename S>
void xent_softmax_dense(const S* p, const S* t, const S* g, Index rows, Index n, S eps, S* values, S* grad) {
  parallel_for_rows(rows, [&](Index r) {
    const S* pr = p + r * n;
    const S* tr = t + r * n;
    const S s = chunked_sum(pr, n);  // Σ_j p_j
    S value = 0, kept_sum = 0;
    for (Index j = 0; j < n; ++j) {
      if (tr[j] == S(0)) continue;
      const S q = pr[j] / s;
      value -= tr[j] * std::log(std::clamp(q, eps, S(1) - eps));  // −Σ_j t_j log qc_j
      if (q >= eps && q <= S(1) - eps) kept_sum += tr[j];         // Σ_k kept_k
    }
    values[r] = value;
    S* dz = grad + r * n;
    const S gr = g[r];
    if (gr == S(0)) {
      std::fill_n(dz, n, S(0));
      return;
    }
    for (Index j = 0; j < n; ++j) {  // (branch-free: vectorised)
      const S q = pr[j] / s;
      const S kept = q >= eps && q <= S(1) - eps ? tr[j] : S(0);
      dz[j] = (q * kept_sum - kept) * gr;  // ∂L/∂z_j = g_r (q_j Σ_k kept_k − kept_j)
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

template void softmax_row<float>(const float*, Index, float*);
template void softmax_row<double>(const double*, Index, double*);
template void softmax_rows<float>(const float*, Index, Index, float*);
template void softmax_rows<double>(const double*, Index, Index, double*);
template void xent_softmax_sparse<float>(const float*, const int64_t*, const float*, Index, Index, float, float*,
                                         float*);
template void xent_softmax_sparse<double>(const double*, const int64_t*, const double*, Index, Index, double,
                                          double*, double*);
template void xent_softmax_dense<float>(const float*, const float*, const float*, Index, Index, float, float*,
                                        float*);
template void xent_softmax_dense<double>(const double*, const double*, const double*, Index, Index, double,
                                         double*, double*);
template void activation_values<float>(int, const float*, Index, float*);
template void activation_values<double>(int, const double*, Index, double*);

LSTMFAST_NAMESPACE_END  // lstmfast
