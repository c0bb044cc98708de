"""Latency of one streaming step at batch 1: lstmfast's `model.stream().step(x_t)` against
PyTorch's `nn.LSTMCell` called once per step and ONNX Runtime running a one-step ONNX LSTM with
the state passed in and out, same weights, in turns in one process.

    python bench/bench_streaming.py                 # H = 128 and 512, D = 32, one thread
    python bench/bench_streaming.py --units 128 --steps 20000 --threads 1

Each framework runs --steps steps (after 500 warm-up steps) in each of --rounds rounds, the
frameworks taking turns; reported: the median (p50) and 99th percentile (p99) of the per-step
times pooled over the rounds, and lstmfast's p50 over the best other p50. The outputs of the three
are checked against each other first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from machine import cpu_model, load_average_warning


def onnx_step_session(W, U, b, threads, path):
    """An ONNX model of one LSTM step: (x (1,1,D), h (1,1,H), c (1,1,H)) -> (h', c')."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    from lstmfast.saving.onnx_export import reorder_gates  # Keras [i f c o] → ONNX [i o f c]

    H = U.shape[0]
    Wo, Ro = reorder_gates(W.T, H)[None], reorder_gates(U.T, H)[None]
    Bo = np.concatenate([reorder_gates(b, H), np.zeros(4 * H, np.float32)])[None]
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R", "B", "", "h", "c"], ["", "h_out", "c_out"], hidden_size=H)],
        "step",
        [helper.make_tensor_value_info("x", f, [1, 1, W.shape[0]]), helper.make_tensor_value_info("h", f, [1, 1, H]),
         helper.make_tensor_value_info("c", f, [1, 1, H])],
        [helper.make_tensor_value_info("h_out", f, [1, 1, H]), helper.make_tensor_value_info("c_out", f, [1, 1, H])],
        [numpy_helper.from_array(Wo.astype(np.float32), "W"), numpy_helper.from_array(Ro.astype(np.float32), "R"),
         numpy_helper.from_array(Bo.astype(np.float32), "B")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--units", default="128,512")
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    import tempfile

    import torch

    import lstmfast as lf

    _, warning = load_average_warning()
    if warning:
        print(warning)
    torch.set_num_threads(args.threads)
    lf.set_num_threads(args.threads)
    print(f"{cpu_model()}; batch 1, D = {args.features}, {args.threads} thread(s); per-step times in µs")
    rng = np.random.default_rng(0)
    for H in (int(u) for u in args.units.split(",")):
        D = args.features
        model = lf.Sequential([lf.Input((None, D)), lf.layers.LSTM(H)])
        W, U, b = (w.astype(np.float32) for w in model.get_weights())
        b = rng.standard_normal(b.shape).astype(np.float32) * 0.1
        model.set_weights([W, U, b])
        stream = model.stream(batch=1)
        cell = torch.nn.LSTMCell(D, H)
        with torch.no_grad():  # Keras [i f c o] and torch [i f g o] agree; torch keeps W as (4H, D)
            cell.weight_ih.copy_(torch.from_numpy(W.T.copy()))
            cell.weight_hh.copy_(torch.from_numpy(U.T.copy()))
            cell.bias_ih.copy_(torch.from_numpy(b))
            cell.bias_hh.zero_()
        with tempfile.TemporaryDirectory() as tmp:
            sess = onnx_step_session(W, U, b, args.threads, os.path.join(tmp, "step.onnx"))
            xs = rng.standard_normal((args.steps + 500, D)).astype(np.float32)

            # the three agree on a few steps
            th = (torch.zeros(1, H), torch.zeros(1, H))
            oh, oc = np.zeros((1, 1, H), np.float32), np.zeros((1, 1, H), np.float32)
            for t in range(5):
                y = stream.step(xs[t:t + 1])
                with torch.no_grad():
                    th = cell(torch.from_numpy(xs[t:t + 1]), th)
                oh, oc = sess.run(None, {"x": xs[t:t + 1][None], "h": oh, "c": oc})
            assert np.allclose(y, th[0].numpy(), atol=1e-5) and np.allclose(y, oh[0], atol=1e-5)

            def run_lstmfast(x):
                stream.step(x)

            state = {"t": (torch.zeros(1, H), torch.zeros(1, H)),
                     "o": (np.zeros((1, 1, H), np.float32), np.zeros((1, 1, H), np.float32))}

            def run_torch(x):
                with torch.no_grad():
                    state["t"] = cell(torch.from_numpy(x), state["t"])

            def run_ort(x):
                h, c = sess.run(None, {"x": x[None], "h": state["o"][0], "c": state["o"][1]})
                state["o"] = (h, c)

            times = {"lstmfast": [], "torch LSTMCell": [], "ONNX Runtime": []}
            fns = dict(zip(times, (run_lstmfast, run_torch, run_ort)))
            for _ in range(args.rounds):
                for name, fn in fns.items():
                    for t in range(500):
                        fn(xs[t:t + 1])
                    got = times[name]
                    for t in range(500, 500 + args.steps):
                        x = xs[t:t + 1]
                        s = time.perf_counter()
                        fn(x)
                        got.append(time.perf_counter() - s)
        stats = {k: (1e6 * np.percentile(v, 50), 1e6 * np.percentile(v, 99)) for k, v in times.items()}
        best_other = min(v[0] for k, v in stats.items() if k != "lstmfast")
        print(f"H = {H}: " + "; ".join(f"{k} p50 {p50:.1f} p99 {p99:.1f}" for k, (p50, p99) in stats.items())
              + f"; lstmfast p50 / best other {stats['lstmfast'][0] / best_other:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
