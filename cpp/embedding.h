// embedding.h — the Embedding layer: a row gather forward, a row scatter-add backward.
//
// Dimensions: N looked-up ids (B·T flattened), V vocabulary rows, E embedding width.
//   forward:   out[n, :] = table[ids[n], :]                         out (N, E), table (V, E)
//   backward:  grad[ids[n], :] += d_out[n, :]  for n = 0 … N−1       grad (V, E)
// The backward adds in the order of n for every element, so the result does not depend on
// the thread count (threads split the E columns, never the ids).
#pragma once

#include <cstdint>

#include "common.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

template <typename S>
void embedding_forward(const int64_t* ids, Index N, const S* table, Index E, S* out);

// Zeroes the rows named by clear_ids (the previous step's, say), then scatter-adds d_out.
template <typename S>
void embedding_backward(const int64_t* ids, Index N, const S* d_out, Index E, S* grad,
                        const int64_t* clear_ids, Index n_clear);

LSTMFAST_NAMESPACE_END  // lstmfast
