// arrays.h — whole-array work of the layers between the kernels, on the kernels' threads:
// arrays joined along one axis, gradients summed, and the columns of a matrix summed. Each
// output element is computed from its inputs in an order fixed by the sizes alone, so any
// split of the work between threads gives the same bits.
#pragma once

#include <vector>

#include "common.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

// Viewed around the axis, input i is (outer, inner_i) and the result (outer, Σ_i inner_i):
//   y[o, off_i + j] = x_i[o, j]        off_i = Σ_{k<i} inner_k
template <typename S>
void concat_rows(Index outer, const std::vector<const S*>& x, const std::vector<Index>& inner, S* y);

// y = a + b over rows × cols, row r of a at a + r·lda (of b at b + r·ldb; y's rows contiguous):
// the sum of two gradients of one tensor, either of which may be a view into a larger array
// (Concatenate hands its inputs' gradients on as views).
template <typename S>
void add_rows(Index rows, Index cols, const S* a, Index lda, const S* b, Index ldb, S* y);

// y[c] = Σ_r a[r, c] over rows × cols (rows contiguous): a bias's gradient, the sum of ∂L/∂z
// over every leading axis. The rows are summed in order within blocks of kSumBlock rows, and
// the blocks' sums added in block order.
template <typename S>
void column_sums(Index rows, Index cols, const S* a, S* y);

LSTMFAST_NAMESPACE_END  // lstmfast
