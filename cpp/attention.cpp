// attention.cpp — Luong's dot-product attention, forward and backward (equations in attention.h).
#include "attention.h"

#include <algorithm>
#include <vector>

#include "matmul.h"
#include "softmax.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

namespace {

constexpr double kMasked = 1.0e9;  // Keras's large negative added to hidden scores

}  // namespace

template <typename S>
void dot_attention_forward(const DotAttentionInputs<S>& in, const DotAttentionOutputs<S>& out) {
  const Index Tq = in.Tq, Tv = in.Tv, D = in.D, Dv = in.Dv;
  using V = MatrixView<const S>;
  using W = MatrixView<S>;
  if (in.B == 0 || Tq == 0) return;
  eigen_assert(Tv > 0 && out.out && out.weights && (!in.keep || out.dropped));
  parallel_for_runs(in.B, [&](Index b) {
    const S* q = in.q + b * Tq * D;
    const S* k = in.k + b * Tv * D;
    const S* v = in.v + b * Tv * Dv;
    S* a = out.weights + b * Tq * Tv;
    thread_local std::vector<S> scratch;
    scratch.resize(Tq * Tv);
    // R = Q·Kᵀ, kept in raw when the caller asks; S = s·R and the masks then go to scratch.
    S* r = out.raw ? out.raw + b * Tq * Tv : scratch.data();
    small_product<S>(V::row_major(q, Tq, D, D), V::transposed(k, D, Tv, D), W::row_major(r, Tq, Tv, Tv),
                     Accumulate::No);
    S* s = scratch.data();
    if (in.scale) {
      const S scale = *in.scale;
      for (Index e = 0; e < Tq * Tv; ++e) s[e] = r[e] * scale;  // S = s·R
    } else if (r != s) {
      std::copy(r, r + Tq * Tv, s);
    }
    if (in.value_mask || in.causal) {
      const uint8_t* vm = in.value_mask ? in.value_mask + b * Tv : nullptr;
      for (Index i = 0; i < Tq; ++i)
        for (Index j = 0; j < Tv; ++j)
          if ((vm && !vm[j]) || (in.causal && j > i)) s[i * Tv + j] -= S(kMasked);  // S_ij − 10⁹
    }
    for (Index i = 0; i < Tq; ++i) softmax_row(s + i * Tv, Tv, a + i * Tv);  // A = softmax_j(S)
    const S* ad = a;
    if (in.keep) {  // A_d = A ⊙ keep
      S* d = out.dropped + b * Tq * Tv;
      const S* keep = in.keep + b * Tq * Tv;
      for (Index e = 0; e < Tq * Tv; ++e) d[e] = a[e] * keep[e];
      ad = d;
    }
    S* o = out.out + b * Tq * Dv;
    small_product<S>(V::row_major(ad, Tq, Tv, Tv), V::row_major(v, Tv, Dv, Dv), W::row_major(o, Tq, Dv, Dv),
                     Accumulate::No);  // O = A_d·V
    if (in.query_mask)
      for (Index i = 0; i < Tq; ++i)
        if (!in.query_mask[b * Tq + i]) std::fill_n(o + i * Dv, Dv, S(0));
  });
}

template <typename S>
void dot_attention_backward(const DotAttentionInputs<S>& in, const S* weights, const S* dropped, const S* raw,
                            const DotAttentionGrads<S>& g) {
  const Index Tq = in.Tq, Tv = in.Tv, D = in.D, Dv = in.Dv;
  using V = MatrixView<const S>;
  using W = MatrixView<S>;
  eigen_assert(g.dq && g.dv && (g.dk || D == Dv) && (!in.keep || dropped) && (!in.scale || (raw && g.d_scale)));
  if (in.B == 0) return;
  if (Tq == 0) {  // no query: nothing reaches K or V
    std::fill_n(g.dv, in.B * Tv * Dv, S(0));
    if (g.dk) std::fill_n(g.dk, in.B * Tv * D, S(0));
    if (g.d_scale) std::fill_n(g.d_scale, in.B, S(0));
    return;
  }
  parallel_for_runs(in.B, [&](Index b) {
    const S* q = in.q + b * Tq * D;
    const S* k = in.k + b * Tv * D;
    const S* v = in.v + b * Tv * Dv;
    const S* a = weights + b * Tq * Tv;
    const S* ad = in.keep ? dropped + b * Tq * Tv : a;
    thread_local std::vector<S> d_o, da;
    // dO' = ∂L/∂O with the hidden queries' rows zero
    V dO{g.d_out + b * Tq * g.d_out_stride, Tq, Dv, g.d_out_stride, 1};
    if (in.query_mask) {
      d_o.resize(Tq * Dv);
      for (Index i = 0; i < Tq; ++i) {
        const S* src = dO.data + i * g.d_out_stride;
        if (in.query_mask[b * Tq + i]) std::copy(src, src + Dv, d_o.data() + i * Dv);
        else std::fill_n(d_o.data() + i * Dv, Dv, S(0));
      }
      dO = V::row_major(d_o.data(), Tq, Dv, Dv);
    }
    S* dv = g.dv + b * Tv * Dv;
    small_product<S>(V::transposed(ad, Tv, Tq, Tv), dO, W::row_major(dv, Tv, Dv, Dv), Accumulate::No);  // dV = A_dᵀ·dO'
    da.resize(Tq * Tv);
    small_product<S>(dO, V::transposed(v, Dv, Tv, Dv), W::row_major(da.data(), Tq, Tv, Tv), Accumulate::No);  // dO'·Vᵀ
    if (g.d_weights) {
      const S* dw = g.d_weights + b * Tq * Tv;
      for (Index e = 0; e < Tq * Tv; ++e) da[e] += dw[e];  // + ∂L/∂A_d
    }
    if (in.keep) {
      const S* keep = in.keep + b * Tq * Tv;
      for (Index e = 0; e < Tq * Tv; ++e) da[e] *= keep[e];  // dA = dA_d ⊙ keep
    }
    // dS = A ⊙ (dA − Σ_j dA ⊙ A), in place of dA
    for (Index i = 0; i < Tq; ++i) {
      S* row = da.data() + i * Tv;
      const S* ai = a + i * Tv;
      S dot = 0;
      for (Index j = 0; j < Tv; ++j) dot += row[j] * ai[j];
      for (Index j = 0; j < Tv; ++j) row[j] = ai[j] * (row[j] - dot);
    }
    if (in.scale) {
      const S* r = raw + b * Tq * Tv;
      S sum = 0;
      for (Index e = 0; e < Tq * Tv; ++e) sum += da[e] * r[e];  // Σ dS ⊙ R
      g.d_scale[b] = sum;
      const S scale = *in.scale;
      for (Index e = 0; e < Tq * Tv; ++e) da[e] *= scale;  // dR = s·dS
    }
    small_product<S>(V::row_major(da.data(), Tq, Tv, Tv), V::row_major(k, Tv, D, D),
                     W::row_major(g.dq + b * Tq * D, Tq, D, D), Accumulate::No);  // dQ = dR·K
    // dK = dRᵀ·Q, into dV when the key is the value
    small_product<S>(V::transposed(da.data(), Tv, Tq, Tv), V::row_major(q, Tq, D, D),
                     g.dk ? W::row_major(g.dk + b * Tv * D, Tv, D, D) : W::row_major(dv, Tv, Dv, Dv),
                     g.dk ? Accumulate::No : Accumulate::Yes);
  });
}

template void dot_attention_forward<float>(const DotAttentionInputs<float>&, const DotAttentionOutputs<float>&);
template void dot_attention_forward<double>(const DotAttentionInputs<double>&, const DotAttentionOutputs<double>&);
template void dot_attention_backward<float>(const DotAttentionInputs<float>&, const float*, const float*,
                                            const float*, const DotAttentionGrads<float>&);
template void dot_attention_backward<double>(const DotAttentionInputs<double>&, const double*, const double*,
                                             const double*, const DotAttentionGrads<double>&);

LSTMFAST_NAMESPACE_END  // lstmfast
