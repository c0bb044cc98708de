"""Times the LSTM kernels at the attention benchmark's decoder shape: one training forward and
its backward on one-hot inputs, lstmfast alone (bench/bench_attention.py times the whole step
against PyTorch and Keras).

    python bench/bench_one_hot_lstm.py                    # B=64, T=20, 60 symbols, H=256
    python bench/bench_one_hot_lstm.py --batch 32 --units 512

The forward is ops.lstm_forward(training=True) on one-hot x (B, T, V) from a given (h0, c0),
as a decoder started from its encoder's state runs; the backward is ops.lstm_backward from
∂L/∂outputs, with dx skipped (x is data) and the weight gradients written into buffers, as a
model's first layer runs it. Medians over three rounds of the median of --calls calls, the two
taking turns, float32.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from machine import cpu_model, in_turns


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps-len", type=int, default=20)
    p.add_argument("--vocab", type=int, default=60)
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=300)
    args = p.parse_args(argv)
    import lstmfast
    from lstmfast import ops

    lstmfast.set_num_threads(args.threads)
    B, T, V, H = args.batch, args.steps_len, args.vocab, args.units
    rng = np.random.default_rng(0)
    x = np.eye(V, dtype=np.float32)[rng.integers(0, V, (B, T))]
    kernel = (rng.standard_normal((V, 4 * H)) * 0.1).astype(np.float32)
    recurrent = (rng.standard_normal((H, 4 * H)) * 0.05).astype(np.float32)
    bias = np.zeros(4 * H, np.float32)
    h0 = (rng.standard_normal((B, H)) * 0.1).astype(np.float32)
    c0 = (rng.standard_normal((B, H)) * 0.1).astype(np.float32)
    d_out = (rng.standard_normal((B, T, H)) * 0.01).astype(np.float32)
    grads = (np.zeros_like(kernel), np.zeros_like(recurrent), np.zeros_like(bias))

    def forward():
        return ops.lstm_forward(x, kernel, recurrent, bias, h0=h0, c0=c0, training=True)

    cache = forward().cache
    assert cache.one_hot_input

    def backward():
        return ops.lstm_backward(cache, d_out, input_gradient=False, out=grads)

    for _ in range(20):  # warm-up
        backward()
    fwd, bwd = in_turns([forward, backward], args.calls)
    print(f"one-hot LSTM, B={B}, T={T}, V={V}, H={H}, {args.threads} threads, {cpu_model()}")
    print(f"  training forward {fwd:.3f} ms   backward {bwd:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
