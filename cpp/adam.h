// adam.h — the Adam update, fused over one flat parameter buffer.
#pragma once

#include <cstdint>

#include "common.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

// Keras's Adam (keras.optimizers.Adam), n parameters, step t ≥ 1:
//   α_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ)
//   m ← m + (g − m)(1 − β₁)
//   v ← v + (g² − v)(1 − β₂)
//   p ← p − α_t·m / (√v + ε)          (ε added to √v, Keras's default ε = 1e-7)
template <typename S>
void adam_update(S* param, const S* grad, S* m, S* v, Index n, double learning_rate, double beta_1,
                 double beta_2, double epsilon, int64_t step);

LSTMFAST_NAMESPACE_END  // lstmfast
