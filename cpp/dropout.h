// dropout.h — inverted dropout on a counter-based random stream.
//
//   u_i    = hash(key, i) / 2³²  ∈ [0, 1)           element i's uniform draw
//   keep_i = [u_i ≥ rate]                            kept with probability 1 − rate
//   y_i    = x_i · keep_i / (1 − rate)               forward
//   ∂L/∂x_i = ∂L/∂y_i · keep_i / (1 − rate)          backward: the same function of ∂L/∂y
//
// u_i is a function of the key and the element's index alone (no generator state carried from
// one element to the next), so the backward recomputes the forward's mask from the key instead
// of storing it, every element is computed independently on the kernels' threads, and the
// result does not depend on their number. The hash is two rounds of MurmurHash3's 32-bit
// finaliser (a bijection with full avalanche) keyed by the two halves of the 64-bit key; blocks
// of 2³² elements take a key of their own.
#pragma once

#include <cstdint>

#include "common.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

// y[0, n) = x[0, n) · keep / (1 − rate) for rate in [0, 1); y may be x.
template <typename S>
void dropout(const S* x, Index n, double rate, std::uint64_t key, S* y);

// keep_i / (1 − rate) for i in [0, n): the mask dropout multiplies by (for tests and for
// callers that broadcast one mask over several axes).
template <typename S>
void dropout_mask(Index n, double rate, std::uint64_t key, S* mask);

LSTMFAST_NAMESPACE_END  // lstmfast
