// softmax.h — the output layers' element-wise functions on the kernels' threads:
//
//   softmax_rows:      y_r = exp(x_r − max_j x_rj) / Σ_k exp(x_rk − max_j x_rj)   per row r
//   activation_values: y = f(x) for f in tanh | relu | sigmoid | linear | hard_sigmoid, the
//                      same vectorised functions as the LSTM's gates (activations.h)
//   xent_softmax_*:    a crossentropy loss on softmax probabilities and its gradient with
//                      respect to the softmax's logits, in one pass over the rows
//
// Dense and Activation layers call them from Python's predict and from the C++ runtime alike,
// so the two give the same bits. Each value is computed the same way wherever it lies in the
// buffer and whatever the thread count.
#pragma once

#include "common.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

// x, y: rows × n, row-major; y may not overlap x.
template <typename S>
void softmax_rows(const S* x, Index rows, Index n, S* y);

// One row of softmax_rows on the calling thread: x, y of n values, not overlapping.
template <typename S>
void softmax_row(const S* x, Index n, S* y);

// Codes of activation_values: the LSTM's Activation codes, then hard_sigmoid.
constexpr int kHardSigmoidCode = 4;

// y[0, n) = f(x[0, n)); y may be x.
template <typename S>
void activation_values(int code, const S* x, Index n, S* y);

// Crossentropy of probability rows p (rows × n, each the output of a softmax) and the gradient
// with respect to the softmax's logits z, each row's gradient scaled by g_r (the reduction's
// weight of its value), as Keras computes it on probabilities (ε: the fuzz factor):
//   q = p / Σ_j p_j ,  qc = clip(q, ε, 1 − ε) ,  inside_j = [ε ≤ q_j ≤ 1 − ε]
// Sparse labels y_r ∈ [0, n) (the caller checks the range):
//   value_r = −log qc_y ,  ∂L/∂z_rj = g_r · inside_y · (q_j − [j = y])
// One-hot (or smoothed) targets t (rows × n), kept_j = t_j · inside_j:
//   value_r = −Σ_j t_j log qc_j ,  ∂L/∂z_rj = g_r · (q_j · Σ_k kept_k − kept_j)
// (through q = p/Σp and the softmax Jacobian the chain collapses to these: no product over the
// classes). Rows whose g_r is 0 get a zero gradient. values: rows; grad: rows × n, not
// overlapping p.
template <typename S>
void xent_softmax_sparse(const S* p, const int64_t* labels, const S* g, Index rows, Index n, S eps, S* values,
                         S* grad);
template <typename S>
void xent_softmax_dense(const S* p, const S* t, const S* g, Index rows, Index n, S eps, S* values, S* grad);

LSTMFAST_NAMESPACE_END  // lstmfast
