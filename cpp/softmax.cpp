// softmax.cpp — softmax over rows and element-wise activations (see softmax.h).
#include "softmax.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "activations.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

namespace {

constexpr Index kRows = 16;  // rows per tile

// A row of n values as packets from its start: n / PS whole ones, then the w = n mod PS values
// left as one packet whose other lanes are not read or written (masked loads and stores where
// the instruction set has them, a packet-sized buffer otherwise). Every value thus takes the
// same vector path, and a sum over the row runs in PS lanes from its start, so the results
// depend on the values alone: not on where the row lies (Eigen's loops peel an unaligned head
// in scalar code, whose exp differs from the packet one in the last bit).
template <typename S>
struct RowPackets {
  using Packet = typename Eigen::internal::packet_traits<S>::type;
  static constexpr Index PS = Eigen::internal::unpacket_traits<Packet>::size;

  // The w < PS values at p, `fill` in the other lanes.
  static Packet load_tail(const S* p, Index w, S fill) {
    using namespace Eigen::internal;
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<S, float>)
      return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), static_cast<__mmask16>((1u << w) - 1), p);
    else
      return _mm512_mask_loadu_pd(_mm512_set1_pd(fill), static_cast<__mmask8>((1u << w) - 1), p);
#elif defined(__AVX2__)
    if constexpr (std::is_same_v<S, float>) {
      const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(w)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
    } else {
      const __m256i m = _mm256_cmpgt_epi64(_mm256_set1_epi64x(w), _mm256_setr_epi64x(0, 1, 2, 3));
      return _mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
    }
#else
    alignas(64) S buf[PS];
    for (Index j = 0; j < PS; ++j) buf[j] = j < w ? p[j] : fill;
    return pload<Packet>(buf);
#endif
  }

  // The first w < PS lanes of v to p.
  static void store_tail(S* p, const Packet& v, Index w) {
    using namespace Eigen::internal;
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<S, float>) _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << w) - 1), v);
    else _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << w) - 1), v);
#elif defined(__AVX2__)
    if constexpr (std::is_same_v<S, float>)
      _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(w)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), v);
    else
      _mm256_maskstore_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(w), _mm256_setr_epi64x(0, 1, 2, 3)), v);
#else
    alignas(64) S buf[PS];
    pstore(buf, v);
    std::copy(buf, buf + w, p);
#endif
  }

  // f(j, lanes) for the packets of a row of n values: the whole ones (lanes = PS) at
  // j = 0, PS, …, then the last w < PS values (lanes = w), if any.
  template <typename F>
  static void packets(Index n, F&& f) {
    const Index whole = n / PS * PS;
    for (Index j = 0; j < whole; j += PS) f(j, PS);
    if (whole < n) f(whole, n - whole);
  }

  // The packet of `lanes` values at p (lanes < PS: `fill` in the other lanes).
  static Packet load(const S* p, Index lanes, S fill) {
    return lanes == PS ? Eigen::internal::ploadu<Packet>(p) : load_tail(p, lanes, fill);
  }

  // v with the lanes from `lanes` on set to zero.
  static Packet keep_lanes(const Packet& v, Index lanes) {
    using namespace Eigen::internal;
    if (lanes == PS) return v;
    return pand(v, pcmp_lt(plset<Packet>(S(0)), pset1<Packet>(S(lanes))));
  }

  static void store(S* p, const Packet& v, Index lanes) {
    if (lanes == PS) Eigen::internal::pstoreu(p, v);
    else store_tail(p, v, lanes);
  }
};

// Σ_j x_j over n values in PS running sums from the row's start, then their sum.
template <typename S>
S row_sum(const S* x, Index n) {
  using RP = RowPackets<S>;
  using namespace Eigen::internal;
  typename RP::Packet acc = pzero(typename RP::Packet());
  RP::packets(n, [&](Index j, Index lanes) { acc = padd(acc, RP::load(x + j, lanes, S(0))); });
  return predux(acc);
}

// f(r) for every row r in [0, rows), tiles of kRows rows on the kernels' threads.
template <typename F>
void parallel_for_rows(Index rows, F&& f) {
  parallel_for_runs((rows + kRows - 1) / kRows, [&](Index t) {
    for (Index r = t * kRows; r < std::min(rows, (t + 1) * kRows); ++r) f(r);
  });
}

}  // namespace

template <typename S>
void softmax_row(const S* xr, Index n, S* yr) {
  // Packet by packet (RowPackets): the results depend on the values alone.
  using RP = RowPackets<S>;
  using Packet = typename RP::Packet;
  using namespace Eigen::internal;
  const S lowest = -std::numeric_limits<S>::infinity();
  Packet mx = pset1<Packet>(lowest);
  RP::packets(n, [&](Index j, Index lanes) { mx = pmax(mx, RP::load(xr + j, lanes, lowest)); });
  const Packet m = pset1<Packet>(predux_max(mx));  // m_r (exact in any order)
  Packet acc = pzero(m);
  RP::packets(n, [&](Index j, Index lanes) {
    const Packet e = RP::keep_lanes(pexp(psub(RP::load(xr + j, lanes, S(0)), m)), lanes);  // e_j = exp(x_j − m_r)
    RP::store(yr + j, e, lanes);
    acc = padd(acc, e);
  });
  const Packet inv = pset1<Packet>(S(1) / predux(acc));
  RP::packets(n, [&](Index j, Index lanes) {
    RP::store(yr + j, pmul(RP::load(yr + j, lanes, S(0)), inv), lanes);  // y_j = e_j / Σ_k e_k
  });
}

template <typename S>
void softmax_rows(const S* x, Index rows, Index n, S* y) {
  parallel_for_rows(rows, [&](Index r) { softmax_row(x + r * n, n, y + r * n); });
}

template <typename S>
void xent_softmax_sparse(const S* p, const int64_t* labels, const S* g, Index rows, Index n, S eps, S* values,
                         S* grad) {
  using RP = RowPackets<S>;
  using Packet = typename RP::Packet;
  using namespace Eigen::internal;
  parallel_for_rows(rows, [&](Index r) {
    const S* pr = p + r * n;
    const Index y = static_cast<Index>(labels[r]);
    const S inv = S(1) / row_sum(pr, n);                      // 1 / Σ_j p_j
    const S qy = pr[y] * inv;                                 // q_y = p_y / Σp
    values[r] = -std::log(std::clamp(qy, eps, S(1) - eps));  // −log clip(q_y, ε, 1 − ε)
    const S gi = (qy >= eps && qy <= S(1) - eps) ? g[r] : S(0);  // g_r · inside_y
    S* dz = grad + r * n;
    if (gi == S(0)) {
      std::fill_n(dz, n, S(0));
      return;
    }
    const Packet ip = pset1<Packet>(inv), gp = pset1<Packet>(gi);
    RP::packets(n, [&](Index j, Index lanes) {
      RP::store(dz + j, pmul(pmul(RP::load(pr + j, lanes, S(0)), ip), gp), lanes);  // ∂L/∂z_j = g_r · q_j
    });
    dz[y] = (qy - S(1)) * gi;  // − g_r at j = y
  });
}

template <typename S>
void xent_softmax_dense(const S* p, const S* t, const S* g, Index rows, Index n, S eps, S* values, S* grad) {
  using RP = RowPackets<S>;
  using Packet = typename RP::Packet;
  using namespace Eigen::internal;
  const Packet lo = pset1<Packet>(eps), hi = pset1<Packet>(S(1) - eps);
  parallel_for_rows(rows, [&](Index r) {
    const S* pr = p + r * n;
    const S* tr = t + r * n;
    const Packet inv = pset1<Packet>(S(1) / row_sum(pr, n));  // 1 / Σ_j p_j
    // q_j = p_j · (1/Σp), t_j, inside_j = [ε ≤ q_j ≤ 1 − ε], kept_j = t_j · inside_j (lanes
    // past the row's end: p = 1 and t = 0, so they add nothing)
    auto at = [&](Index j, Index lanes, Packet& q, Packet& tj, Packet& kept) {
      q = pmul(RP::load(pr + j, lanes, S(1)), inv);
      tj = RP::load(tr + j, lanes, S(0));
      kept = pand(pand(pcmp_le(lo, q), pcmp_le(q, hi)), tj);
    };
    Packet value = pzero(inv), kept_sum = pzero(inv);
    RP::packets(n, [&](Index j, Index lanes) {
      Packet q, tj, kept;
      at(j, lanes, q, tj, kept);
      kept_sum = padd(kept_sum, kept);  // Σ_k kept_k
      if (!predux_any(pandnot(ptrue(tj), pcmp_eq(tj, pzero(tj))))) return;  // no t_j ≠ 0 here: nothing to add
      value = pmadd(tj, plog(pmin(pmax(q, lo), hi)), value);  // Σ_j t_j log qc_j
    });
    values[r] = -predux(value);  // −Σ_j t_j log qc_j
    S* dz = grad + r * n;
    const S gr = g[r];
    if (gr == S(0)) {
      std::fill_n(dz, n, S(0));
      return;
    }
    const Packet ks = pset1<Packet>(predux(kept_sum)), gp = pset1<Packet>(gr);
    RP::packets(n, [&](Index j, Index lanes) {
      Packet q, tj, kept;
      at(j, lanes, q, tj, kept);
      RP::store(dz + j, pmul(psub(pmul(q, ks), kept), gp), lanes);  // ∂L/∂z_j = g_r (q_j Σ_k kept_k − kept_j)
    });
  });
}

template <typename S>
void activation_values(int code, const S* x, Index n, S* y) {
  constexpr Index kTile = 1 << 14;  // values per tile: a multiple of every packet size
  parallel_for_runs((n + kTile - 1) / kTile, [&](Index t) {
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
