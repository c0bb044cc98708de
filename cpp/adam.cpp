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
  // One pass over the four buffers, a packet at a time, every packet computed by the same
  // operations wherever it lies; the last len mod PS values of a chunk through Eigen's arrays.
  using namespace Eigen::internal;
  using Packet = typename packet_traits<S>::type;
  constexpr Index PS = packet_traits<S>::size;
  constexpr Index kChunk = 1 << 14;
  parallel_for_tiles((n + kChunk - 1) / kChunk, [&](Index blk) {
    const Index j0 = blk * kChunk, len = std::min(kChunk, n - j0), whole = len / PS * PS;
    const Packet b1 = pset1<Packet>(one_m_b1), b2 = pset1<Packet>(one_m_b2), a = pset1<Packet>(alpha);
    const Packet e = pset1<Packet>(eps);
    for (Index j = j0; j < j0 + whole; j += PS) {
      const Packet g = ploadu<Packet>(grad + j);
      Packet mj = ploadu<Packet>(m + j), vj = ploadu<Packet>(v + j);
      mj = padd(mj, pmul(psub(g, mj), b1));          // m ← m + (g − m)(1 − β₁)
      vj = padd(vj, pmul(psub(pmul(g, g), vj), b2));  // v ← v + (g² − v)(1 − β₂)
      pstoreu(m + j, mj);
      pstoreu(v + j, vj);
      pstoreu(param + j, psub(ploadu<Packet>(param + j), pdiv(pmul(mj, a), padd(psqrt(vj), e))));  // p ← p − α_t·m/(√v + ε)
    }
    const Index j1 = j0 + whole, rest = len - whole;
    if (rest == 0) return;
    ArrMap<S> p(param + j1, rest), mm(m + j1, rest), vv(v + j1, rest);
    CArrMap<S> g(grad + j1, rest);
    mm += (g - mm) * one_m_b1;
    vv += (g.square() - vv) * one_m_b2;
    p -= (mm * alpha) / (vv.sqrt() + eps);
  });
}

template void adam_update<float>(float*, const float*, float*, float*, Index, double, double, double,
                                 double, int64_t);
template void adam_update<double>(double*, const double*, double*, double*, Index, double, double,
                                  double, double, int64_t);

LSTMFAST_NAMESPACE_END  // lstmfast
