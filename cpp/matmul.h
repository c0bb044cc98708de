// matmul.h — the products of Dense (and of any layer that multiplies by a weight matrix),
// on the kernels' own threads.
//
// Dimensions: M rows (B·T flattened), K inputs, N outputs.
//   C (M × N) = op(A) · op(B) [+ bias] [+ C]      op(X) = X or Xᵀ, as the caller's views say
// Dense's three products are calls of it:
//   forward     z  = x · kernel + bias            A = x (M × K),    B = kernel (K × N)
//   backward    ∂L/∂kernel = xᵀ · ∂L/∂z           A = xᵀ (K × M),   B = ∂L/∂z (M × N)
//               ∂L/∂x      = ∂L/∂z · kernelᵀ      A = ∂L/∂z,        B = kernelᵀ (N × K)
// B is packed once per call (gemm.h), then fixed tiles of C are computed in parallel: the
// order of every sum depends on the sizes alone, so results do not depend on the threads.
#pragma once

#include "common.h"
#include "gemm.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

template <typename S>
void matmul(const MatrixView<const S>& A, const MatrixView<const S>& B, const S* bias,
            const MatrixView<S>& C, Accumulate accumulate);

LSTMFAST_NAMESPACE_END  // lstmfast
