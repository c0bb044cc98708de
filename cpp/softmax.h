// softmax.h — the output layers' element-wise functions on the kernels' threads:
//
//   softmax_rows:      y_r = exp(x_r − max_j x_rj) / Σ_k exp(x_rk − max_j x_rj)   per row r
//   activation_values: y = f(x) for f in tanh | relu | sigmoid | linear | hard_sigmoid, the
//                      same vectorised functions as the LSTM's gates (activations.h)
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

// Codes of activation_values: the LSTM's Activation codes, then hard_sigmoid.
constexpr int kHardSigmoidCode = 4;

// y[0, n) = f(x[0, n)); y may be x.
template <typename S>
void activation_values(int code, const S* x, Index n, S* y);

LSTMFAST_NAMESPACE_END  // lstmfast
