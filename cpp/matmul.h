// matmul.h — the products of Dense (and of any layer that multiplies by a weight matrix),
// on the kernels' own threads.
//
// Dimensions: M rows (B·T flattened), K inputs, N outputs.
//   C (M × N) = op(A) · op(B) [+ bias] [+ C]      op(X) = X or Xᵀ, as the caller's views say
// Dense's three products are calls of it (and batched_matmul runs one per sample):
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

// C_i = op(A_i)·op(B_i) for i < batch, the i-th matrices a_step, b_step, c_step values after
// the views' (attention's scores Q·Kᵀ and context A·V, sample by sample, and their gradients).
// The products are shared out between threads; each one's sums depend on the sizes alone.
template <typename S>
void batched_matmul(Index batch, const MatrixView<const S>& A, Index a_step, const MatrixView<const S>& B,
                    Index b_step, const MatrixView<S>& C, Index c_step);

// One of batched_matmul's products on the calling thread: C = op(A)·op(B), or C += op(A)·op(B)
// (Accumulate::Yes), B row-major (B.cs = 1) or transposed (B.rs = 1).
template <typename S>
void small_product(const MatrixView<const S>& A, const MatrixView<const S>& B, const MatrixView<S>& C,
                   Accumulate accumulate);

LSTMFAST_NAMESPACE_END  // lstmfast
