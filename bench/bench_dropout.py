"""Times a Dropout layer's forward and backward: lstmfast's kernel (cpp/dropout.h: the mask drawn
from a key and each element's index, in one pass on the kernels' threads) against the numpy
formula the layer used before it (uniform draws from a numpy Generator, a comparison, a scaled
float mask kept for the backward), and against PyTorch's torch.nn.functional.dropout when torch
is installed.

    python bench/bench_dropout.py                  # (64, 25, W) float32, W = 128, 256, 512
    python bench/bench_dropout.py --threads 1

Medians of --repeats calls, three rounds with the implementations taking turns. The forward is
y = x·keep/(1 − rate); the backward ∂L/∂x = ∂L/∂y·keep/(1 − rate) (numpy: the kept mask times
∂L/∂y; lstmfast: the same kernel on ∂L/∂y with the forward's key).
"""

import argparse
import sys

import numpy as np

from machine import cpu_model, in_turns


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--widths", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--rate", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args(argv)
    import lstmfast as lf
    from lstmfast import ops

    try:
        import torch
    except ImportError:
        torch = None
    lf.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    gen = np.random.default_rng(1)
    rate = args.rate
    print(f"Dropout({rate}) on ({args.batch}, {args.steps}, W) float32, {args.threads} threads; {cpu_model()}")
    head = f"{'W':>5} {'pass':>9} {'numpy ms':>9} {'lstmfast ms':>12}"
    print(head + (f" {'PyTorch ms':>11}" if torch is not None else "") + f" {'lstmfast / numpy':>17}")
    for w in args.widths:
        x = rng.standard_normal((args.batch, args.steps, w)).astype(np.float32)

        def numpy_forward():
            keep = gen.random(x.shape, dtype=np.float64) >= rate
            mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - rate))
            return x * mask, mask

        mask = numpy_forward()[1]
        fwd = [lambda: numpy_forward(), lambda: ops.dropout(x, rate, 12345)]
        bwd = [lambda: x * mask, lambda: ops.dropout(x, rate, 12345)]
        if torch is not None:
            tx = torch.from_numpy(x)
            fwd.append(lambda: torch.nn.functional.dropout(tx, rate, training=True))
            tmask = torch.from_numpy(mask)
            bwd.append(lambda: tx * tmask)  # PyTorch's backward multiplies by its kept mask
        for name, fns in (("forward", fwd), ("backward", bwd)):
            t = in_turns(fns, args.repeats)
            row = f"{w:>5} {name:>9} {t[0]:9.3f} {t[1]:12.3f}"
            if torch is not None:
                row += f" {t[2]:11.3f}"
            print(row + f" {t[1] / t[0]:17.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
