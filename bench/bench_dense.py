"""Times Dense's three products on lstmfast's kernels (ops.matmul, on --threads threads) against
numpy's BLAS on one thread, which is how numpy runs inside fit (a second BLAS team beside the
kernels' own threads makes both slower).

    python bench/bench_dense.py          # B·T = 1280 rows; 512 inputs; 60, 1000 and 8000 outputs

forward z = x·W, backward ∂W = xᵀ·∂z and ∂x = ∂z·Wᵀ, float32; medians of --repeats calls, the two
taking turns. Then the softmax output's element-wise work per training step: p = softmax(z) and
sparse categorical crossentropy with its gradient with respect to z, g·(p/Σp − onehot), as numpy
formulas (the loss module's path before the kernels) against ops.softmax + ops.crossentropy_on_softmax.
"""

import argparse
import sys

import numpy as np

from machine import cpu_model, in_turns


def numpy_softmax_crossentropy(z, labels, g, eps=1e-7):
    """p = softmax(z); value = −log clip(q_y, ε, 1 − ε) and g·inside_y·(q − onehot(y)), q = p/Σp."""
    e = np.exp(z - z.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    idx = labels[:, None]
    q = p / np.sum(p, axis=-1, keepdims=True)
    qy = np.take_along_axis(q, idx, axis=-1)
    values = -np.log(np.clip(qy, eps, 1 - eps))[:, 0]
    inside = ((qy >= eps) & (qy <= 1 - eps)).astype(q.dtype)
    local = q * inside
    np.put_along_axis(local, idx, (qy - 1) * inside, axis=-1)
    return values, local * g[:, None]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1280)
    p.add_argument("--inputs", type=int, default=512)
    p.add_argument("--outputs", type=int, nargs="+", default=[60, 1000, 8000])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    import lstmfast as lf
    from lstmfast import ops

    lf.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.inputs)).astype(np.float32)
    print(f"Dense products, float32, {args.rows} rows x {args.inputs} inputs; lstmfast on {args.threads} "
          f"threads, numpy BLAS on 1; {cpu_model()}")
    print(f"{'outputs':>8} {'product':>8} {'numpy ms':>9} {'lstmfast ms':>12} {'ratio':>6}")
    with threadpool_limits(1, "blas"):
        for n in args.outputs:
            w = rng.standard_normal((args.inputs, n)).astype(np.float32)
            dz = rng.standard_normal((args.rows, n)).astype(np.float32)
            cases = {"z": (lambda: x @ w, lambda: ops.matmul(x, w)),
                     "dW": (lambda: x.T @ dz, lambda: ops.matmul(x, dz, transpose_a=True)),
                     "dx": (lambda: dz @ w.T, lambda: ops.matmul(dz, w, transpose_b=True))}
            for name, (ref, ours) in cases.items():
                a, b = in_turns([ref, ours], max(3, args.repeats * 60 // n) if n > 60 else args.repeats)
                print(f"{n:>8} {name:>8} {a:9.3f} {b:12.3f} {b / a:6.2f}")
        print(f"\nsoftmax + crossentropy and its gradient, {args.rows} rows")
        print(f"{'outputs':>8} {'numpy ms':>9} {'lstmfast ms':>12} {'ratio':>6}")
        for n in args.outputs:
            z = rng.standard_normal((args.rows, n)).astype(np.float32)
            labels = rng.integers(0, n, args.rows)
            g = np.full(args.rows, 1.0 / args.rows, np.float32)
            a, b = in_turns([lambda: numpy_softmax_crossentropy(z, labels, g),
                             lambda: ops.crossentropy_on_softmax(ops.softmax(z), labels, g, sparse=True)],
                            max(3, args.repeats * 60 // n) if n > 60 else args.repeats)
            print(f"{n:>8} {a:9.3f} {b:12.3f} {b / a:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
