// adam.cpp — Adam over a flat parameter buffer (formula in adam.h).
#include "adam.h"

#include <cmath>

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

template <typename S>
void adam_update(S* param, const S* grad, S* m, S* v, Index n, double learning_rate, double beta_1,
                 double beta_2, double epsilon, int64_t step) {
  const double t = static_cast<double>(step);
  // α_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ), in the variable's precision as Keras computes it.
  const S alpha = static_cast<S>(learning_rate) *
                  static_cast<S>(std::sqrt(1.0 - std::pow(beta_2, t))) /
                  static_cast<S>(1.0 - std::pow(beta_1, t));
  const S one_m_b1 = static_cast<S>(1.0 - beta_1), one_m_b2 = static_cast<S>(1.0 - beta_2);
  const S eps = static_cast<S>(epsilon);
  constexpr Index kChunk = 1 << 14;
  parallel_for_tiles((n + kChunk - 1) / kChunk, [&](Index blk) {
    const Index j0 = blk * kChunk, len = std::min(kChunk, n - j0);
    ArrMap<S> p(param + j0, len), mm(m + j0, len), vv(v + j0, len);
    CArrMap<S> g(grad + j0, len);
    mm += (g - mm) * one_m_b1;                     // m ← m + (g − m)(1 − β₁)
    vv += (g.square() - vv) * one_m_b2;            // v ← v + (g² − v)(1 − β₂)
    p -= (mm * alpha) / (vv.sqrt() + eps);         // p ← p − α_t·m/(√v + ε)
  });
}

template void adam_update<float>(float*, const float*, float*, float*, Index, double, double, double,
                                 double, int64_t);
template void adam_update<double>(double*, const double*, double*, double*, Index, double, double,
                                  double, double, int64_t);

LSTMFAST_NAMESPACE_END  // lstmfast
