// embedding.cpp — row gather and scatter-add (see embedding.h).
#include "embedding.h"

#include <cstring>

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

template <typename S>
void embedding_forward(const int64_t* ids, Index N, const S* table, Index E, S* out) {
  constexpr Index kRows = 256;
  parallel_for_tiles((N + kRows - 1) / kRows, [&](Index t) {
    for (Index n = t * kRows; n < std::min(N, (t + 1) * kRows); ++n)
      std::memcpy(out + n * E, table + ids[n] * E, sizeof(S) * E);  // out[n] = table[ids[n]]
  });
}

template <typename S>
void embedding_backward(const int64_t* ids, Index N, const S* d_out, Index E, S* grad,
                        const int64_t* clear_ids, Index n_clear) {
  constexpr Index kCols = 32;
  parallel_for_tiles((E + kCols - 1) / kCols, [&](Index t) {
    const Index j0 = t * kCols, w = std::min(kCols, E - j0);
    for (Index n = 0; n < n_clear; ++n) std::fill_n(grad + clear_ids[n] * E + j0, w, S(0));
    for (Index n = 0; n < N; ++n)  // grad[ids[n]] += d_out[n], in the order of n
      ArrMap<S>(grad + ids[n] * E + j0, w) += CArrMap<S>(d_out + n * E + j0, w);
  });
}

template void embedding_forward<float>(const int64_t*, Index, const float*, Index, float*);
template void embedding_forward<double>(const int64_t*, Index, const double*, Index, double*);
template void embedding_backward<float>(const int64_t*, Index, const float*, Index, float*, const int64_t*, Index);
template void embedding_backward<double>(const int64_t*, Index, const double*, Index, double*, const int64_t*, Index);

LSTMFAST_NAMESPACE_END  // lstmfast
