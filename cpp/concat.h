// concat.h — arrays joined along one axis, on the kernels' threads.
//
// Viewed around the axis, input i is (outer, inner_i) and the result (outer, Σ_i inner_i):
//   y[o, off_i + j] = x_i[o, j]        off_i = Σ_{k<i} inner_k
// A copy, so any split of the rows between threads gives the same bits.
#pragma once

#include <vector>

#include "common.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

template <typename S>
void concat_rows(Index outer, const std::vector<const S*>& x, const std::vector<Index>& inner, S* y);

LSTMFAST_NAMESPACE_END  // lstmfast
