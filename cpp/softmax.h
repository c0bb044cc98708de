// softmax.h — the softmax over the last axis, row by row, on the kernels' threads.
//
//   y[r, j] = exp(x[r, j] − m_r) / Σ_k exp(x[r, k] − m_r)      m_r = max_k x[r, k]
//
// Subtracting the row's maximum keeps every exponent ≤ 0 (no overflow) without changing the
// result. Rows are independent: fixed tiles of rows go to the threads, so the bits do not
// depend on the thread count.
#pragma once

#include "common.h"

namespace lstmfast {

template <typename S>
void softmax_rows(const S* x, Index rows, Index n, S* y);

}  // namespace lstmfast
