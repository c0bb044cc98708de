// attention.h — Luong's dot-product attention (Keras's Attention, score_mode="dot"), forward and
// backward, sample by sample on the kernels' threads.
//
// Shapes: query Q (B, Tq, D), key K (B, Tv, D), value V (B, Tv, Dv); weights A (B, Tq, Tv);
// output O (B, Tq, Dv). Per sample:
//
//   raw scores   R = Q·Kᵀ
//   scores       S = s·R                       (S = R without a scale)
//   masking      S_ij − 10⁹ where the value mask hides k_j, or j > i under the causal mask
//   weights      A = softmax_j(S)
//   dropout      A_d = A ⊙ keep                (keep: 0 or 1/(1 − rate); A_d = A without)
//   output       O = A_d·V, row i zero where the query mask hides q_i
//
// Backward, with ∂L/∂O given (and ∂L/∂A_d, when the weights are an output of the model too):
//
//   dO'  = ∂L/∂O, row i zero where the query mask hides q_i
//   dV   = A_dᵀ·dO'
//   dA_d = dO'·Vᵀ (+ ∂L/∂A_d)       dA = dA_d ⊙ keep
//   dS   = A ⊙ (dA − Σ_j dA ⊙ A)     (softmax's Jacobian; hidden positions have A = 0)
//   ∂L/∂s = Σ dS ⊙ R                 (one sum per sample; the caller adds them in order)
//   dR   = s·dS
//   dQ   = dR·K         dK = dRᵀ·Q   (added to dV when the key is the value)
//
// Every product is small_product's (matmul.h), whose sums depend on the sizes alone, and the
// forward is batched_matmul's and softmax_rows's arithmetic value for value: the C++ runtime,
// which computes attention with those, gives the same bits.
#pragma once

#include <cstdint>

#include "common.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

template <typename S>
struct DotAttentionInputs {
  Index B = 0, Tq = 0, Tv = 0, D = 0, Dv = 0;
  const S* q = nullptr;                   // (B, Tq, D)
  const S* k = nullptr;                   // (B, Tv, D)
  const S* v = nullptr;                   // (B, Tv, Dv)
  const S* scale = nullptr;               // s, or nullptr: no scale
  const uint8_t* value_mask = nullptr;    // (B, Tv): 0 hides k_j; or nullptr
  bool causal = false;                    // hide k_j from q_i where j > i
  const S* keep = nullptr;                // (B, Tq, Tv) dropout multipliers, or nullptr
  const uint8_t* query_mask = nullptr;    // (B, Tq): 0 zeroes O_i; or nullptr
};

template <typename S>
struct DotAttentionOutputs {
  S* out = nullptr;      // O (B, Tq, Dv)
  S* weights = nullptr;  // A (B, Tq, Tv)
  S* dropped = nullptr;  // A_d (B, Tq, Tv), written when keep is given
  S* raw = nullptr;      // R (B, Tq, Tv), written when given (the backward of a scale needs it)
};

template <typename S>
void dot_attention_forward(const DotAttentionInputs<S>& in, const DotAttentionOutputs<S>& out);

template <typename S>
struct DotAttentionGrads {
  const S* d_out = nullptr;      // ∂L/∂O: B·Tq rows of Dv values, d_out_stride apart
  Index d_out_stride = 0;
  const S* d_weights = nullptr;  // ∂L/∂A_d (B, Tq, Tv), or nullptr
  S* dq = nullptr;               // (B, Tq, D)
  S* dk = nullptr;               // (B, Tv, D), or nullptr: the key is the value, dK goes into dv
  S* dv = nullptr;               // (B, Tv, Dv)
  S* d_scale = nullptr;          // (B): Σ dS ⊙ R of each sample, when the inputs have a scale
};

// weights, dropped (when keep) and raw (when scale): the forward's outputs.
template <typename S>
void dot_attention_backward(const DotAttentionInputs<S>& in, const S* weights, const S* dropped, const S* raw,
                            const DotAttentionGrads<S>& grads);

LSTMFAST_NAMESPACE_END  // lstmfast
