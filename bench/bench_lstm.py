"""Times lstmfast's LSTM against torch.nn.LSTM and ONNX Runtime in the same run.

    python bench/bench_lstm.py                 # all cases, about three minutes on 2 cores
    python bench/bench_lstm.py --quick         # fewer repeats, a quick look
    python bench/bench_lstm.py --json out.json # also write the results as JSON
    python bench/bench_lstm.py --policy-ab     # also lstmfast under the fixed thread policy

Every framework runs float32 on the same number of threads (--threads, default 2) with the same
weights and inputs. For each case (B batch, T steps, D features, H units) it measures:
  forward  the full-sequence output (B, T, H); torch under no_grad, ONNX Runtime on the
           torch module exported with torch.onnx.export (an ONNX LSTM node). lstmfast twice:
           ops.lstm_forward on the weight arrays, which packs them on every call as torch
           does, and on weights packed once by ops.pack_lstm_weights ("packed"), as ONNX
           Runtime packs a model's weights when it loads it and as predict() runs its batches.
  train    one training step: forward, an MSE loss against a fixed target, backward through
           time and an Adam update of kernel, recurrent kernel and bias (torch: nn.LSTM and
           torch.optim.Adam; lstmfast: ops.lstm_forward(training=True), ops.lstm_backward and
           ops.adam_update on one flat parameter buffer). x is data, so the step needs no dx:
           lstmfast skips it (input_gradient=False, as a model's first layer does); torch's
           LSTM computes it whether x requires a gradient or not. The step with dx is timed
           too (column "+dx").
Times are medians over repeated calls after warm-up calls, which are excluded; the frameworks take
turns in nine rounds, three with --quick (lstmfast, torch, ORT, sgemm, lstmfast, …), each turn
opened by warm-up calls, so that a slow spell of the machine hits all of them alike. The sgemm
ceiling is the faster of torch.mm and numpy.matmul on 2048×2048 float32 matrices on the same
threads: both are measured at the start, and the faster one again in every case's forward
rounds, which gives that case's ceiling (the machine's speed drifts over a run, so a ceiling
taken once at the start would flatter or shame whichever cases ran in another spell). The forward of an
LSTM does 2·B·T·4H·(D+H) floating-point operations, a training step about three times that.

Denormals are flushed to zero everywhere, so that no framework is slowed by them and none is
favoured: lstmfast does it inside its kernels, torch through torch.set_flush_denormal(True),
ONNX Runtime through the session option session.set_denormal_as_zero.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

from machine import cpu_model, load_average_warning

CASES = [  # (B, T, D, H)
    (32, 50, 64, 128),
    (64, 100, 256, 256),
    (16, 25, 512, 512),
    (32, 25, 1024, 1024),
    (1, 100, 32, 128),
    (128, 30, 1, 50),
]


def measure_interleaved(fns: dict, warmup: int, repeats: int, min_seconds: float,
                        rounds: int = 9) -> dict:
    """Median seconds of each fn() in `fns`, measured in `rounds` rounds in which the
    frameworks take turns (a, b, c, a, b, c, …), so that a slow spell of the machine (they
    come and go within seconds on a shared host) hits every framework alike. Each turn starts
    with warm-up calls that are not counted, `warmup` of them in the first round and then
    at least one and 20 ms' worth (they also let the previous framework's idle threads stop
    spinning); then at least repeats/rounds calls and min_seconds/rounds seconds are timed."""
    fns = {k: f for k, f in fns.items() if f is not None}
    times = {k: [] for k in fns}
    per_round = max(1, -(-repeats // rounds))
    for r in range(rounds):
        for k, fn in fns.items():
            start = time.perf_counter()
            n = 0
            while n < (max(1, warmup) if r == 0 else 1) or time.perf_counter() - start < 0.02:
                fn()
                n += 1
            start = time.perf_counter()
            n = 0
            while n < per_round or (time.perf_counter() - start < min_seconds / rounds and n < 1000):
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
                n += 1
            time.sleep(getattr(fn, "settle", 0.0))
    return {k: statistics.median(v) for k, v in times.items()}


class Settling:
    """fn, and the idle seconds after its turn that its worker threads need to stop
    spinning (OpenBLAS's spin on a core for about 0.1 s after each call), so that they do not
    slow down the next framework's turn."""

    def __init__(self, fn, settle: float):
        self.fn, self.settle = fn, settle

    def __call__(self):
        return self.fn()


class WithPolicy:
    """fn run under one lstmfast thread policy (set at each call when another one is in force)."""

    def __init__(self, lstmfast, policy: str, fn):
        self.lstmfast, self.policy, self.fn = lstmfast, policy, fn
        self.settle = getattr(fn, "settle", 0.0)

    def __call__(self):
        if self.lstmfast.get_thread_policy() != self.policy:
            self.lstmfast.set_thread_policy(self.policy)
        return self.fn()


def policy_ab(lstmfast, fns: dict, names) -> dict:
    """fns with each of `names` run under the adaptive policy, and again as `name_fixed` under
    the fixed one right after it in every round."""
    out = {}
    for k, f in fns.items():
        if k in names:
            out[k] = WithPolicy(lstmfast, "adaptive", f)
            out[k + "_fixed"] = WithPolicy(lstmfast, "fixed", f)
        elif f is not None:
            out[k] = WithPolicy(lstmfast, "adaptive", f) if k.startswith("lstmfast") else f
    return out


def sgemm_products(torch) -> dict:
    """2048×2048 float32 matrix products: torch.mm, and numpy's BLAS as a second opinion
    (torch's BLAS is not the fastest on every CPU; needs threadpoolctl to pin numpy's threads,
    which the caller's threadpool_limits does)."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    an, bn = a.numpy(), b.numpy()
    cn = np.empty_like(an)
    fns = {"torch.mm": lambda: torch.mm(a, b, out=c)}
    if importlib.util.find_spec("threadpoolctl") is None:
        return fns  # numpy's BLAS thread count cannot be set: torch.mm alone
    fns["numpy.matmul"] = Settling(lambda: np.matmul(an, bn, out=cn), 0.25)
    return fns


SGEMM_FLOPS = 2.0 * 2048 ** 3


class TorchCase:
    def __init__(self, torch, B, T, D, H, seed):
        torch.manual_seed(seed)
        self.torch = torch
        self.lstm = torch.nn.LSTM(D, H, batch_first=True)
        self.x = torch.randn(B, T, D)
        self.target = torch.randn(B, T, H)
        self.opt = torch.optim.Adam(self.lstm.parameters(), lr=1e-4)

    def forward(self):
        with self.torch.no_grad():
            return self.lstm(self.x)[0]

    def train_step(self):
        self.opt.zero_grad(set_to_none=True)
        y = self.lstm(self.x)[0]
        loss = self.torch.nn.functional.mse_loss(y, self.target)
        loss.backward()
        self.opt.step()
        return loss


class LstmfastCase:
    """The same weights as the torch module, in Keras layout: kernel = weight_ihᵀ,
    recurrent_kernel = weight_hhᵀ, bias = bias_ih + bias_hh; kept in one flat buffer."""

    def __init__(self, ops, tc: TorchCase):
        self.ops = ops
        sd = {k: v.detach().numpy() for k, v in tc.lstm.state_dict().items()}
        D, H = sd["weight_ih_l0"].shape[1], sd["weight_hh_l0"].shape[1]
        sizes = [D * 4 * H, H * 4 * H, 4 * H]
        self.params = np.empty(sum(sizes), np.float32)
        self.m, self.v = np.zeros_like(self.params), np.zeros_like(self.params)
        self.slices = []
        start = 0
        for n in sizes:
            self.slices.append(slice(start, start + n))
            start += n
        self.kernel = self.params[self.slices[0]].reshape(D, 4 * H)
        self.recurrent_kernel = self.params[self.slices[1]].reshape(H, 4 * H)
        self.bias = self.params[self.slices[2]]
        self.kernel[:] = sd["weight_ih_l0"].T
        self.recurrent_kernel[:] = sd["weight_hh_l0"].T
        self.bias[:] = sd["bias_ih_l0"] + sd["bias_hh_l0"]
        # A copy of the weights as they are now: the forward rounds run before the train
        # steps, whose Adam updates change the arrays (and not this copy).
        self.packed = ops.pack_lstm_weights(self.kernel, self.recurrent_kernel, self.bias)
        self.x = np.ascontiguousarray(tc.x.numpy())
        self.target = np.ascontiguousarray(tc.target.numpy())
        self.diff = np.empty_like(self.target)
        self.step = 0

    def forward(self):
        return self.ops.lstm_forward(self.x, self.kernel, self.recurrent_kernel, self.bias)[0]

    def forward_packed(self):
        return self.ops.lstm_forward(self.x, self.packed)[0]

    def train_step(self, input_gradient=False):
        ops = self.ops
        out, _, _, cache = ops.lstm_forward(self.x, self.kernel, self.recurrent_kernel, self.bias,
                                            training=True)
        # MSE loss L = mean((y − target)²), dL/dy = 2(y − target)/N
        np.subtract(out, self.target, out=self.diff)
        flat = self.diff.reshape(-1)
        loss = float(np.einsum("i,i->", flat, flat)) / flat.size   # einsum: no BLAS threads competing
        self.diff *= 2.0 / flat.size
        _, d_kernel, d_recurrent_kernel, d_bias, _, _ = ops.lstm_backward(
            cache, d_outputs=self.diff, input_gradient=input_gradient)
        self.step += 1
        for sl, g in zip(self.slices, (d_kernel, d_recurrent_kernel, d_bias)):
            ops.adam_update(self.params[sl], g.reshape(-1), self.m[sl], self.v[sl], learning_rate=1e-4,
                            beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=self.step)
        return loss


class OrtCase:
    def __init__(self, torch, ort, tc: TorchCase, threads: int, tmpdir: str):
        path = os.path.join(tmpdir, "lstm.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The TorchScript exporter emits a single ONNX LSTM node, which ONNX Runtime runs
            # with its own LSTM kernel.
            torch.onnx.export(tc.lstm, (tc.x,), path, input_names=["x"], output_names=["y", "h", "c"],
                              opset_version=17, dynamo=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.feed = {"x": np.ascontiguousarray(tc.x.numpy())}

    def forward(self):
        return self.sess.run(["y"], self.feed)[0]


def fmt(v, spec="8.2f"):
    return format(v, spec) if v is not None else " " * (int(spec.split(".")[0]) - 3) + "n/a"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and three rounds (a rough look, ~40 s)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--threads", type=int, default=2, help="threads for every framework (default 2)")
    p.add_argument("--cases", metavar="B,T,D,H", nargs="+", help="cases to run instead of the default six")
    p.add_argument("--no-train", action="store_true", help="time the forward only")
    p.add_argument("--policy-ab", action="store_true",
                   help="also time lstmfast under the fixed thread policy, in the same rounds as under "
                        "its default adaptive one (an A/B of what the policy costs on a quiet machine)")
    args = p.parse_args(argv)

    import torch

    import lstmfast
    from lstmfast import ops

    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import onnxruntime as ort
    except ImportError as e:
        ort, ort_missing = None, f"ONNX Runtime column skipped: {e}"
    else:
        ort_missing = None

    threads = args.threads
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    lstmfast.set_num_threads(threads)
    cases = [tuple(int(v) for v in c.split(",")) for c in args.cases] if args.cases else CASES
    # (warm-up calls, minimum repeats, minimum seconds per measurement)
    timing = (1, 3, 0.0, 3) if args.quick else (3, 10, 1.0, 9)

    machine = {
        "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "threads": threads,
        "lstmfast_isa": lstmfast.cpu_isa(), "lstmfast": getattr(lstmfast, "__version__", "?"),
        "torch": torch.__version__, "onnxruntime": ort.__version__ if ort else None,
        "numpy": np.__version__, "python": platform.python_version(),
    }
    print(f"CPU: {machine['cpu']} ({machine['logical_cpus']} logical CPUs), {threads} threads per framework")
    print(f"lstmfast {machine['lstmfast']} running instruction set: {machine['lstmfast_isa']}; "
          f"torch {machine['torch']}; onnxruntime {machine['onnxruntime']}")
    print("float32; median ms after warm-up; denormals flushed in every framework")
    machine["load_average_at_start"], busy = load_average_warning()
    if busy:
        print(busy)
    if ort_missing:
        print(ort_missing)

    try:
        from threadpoolctl import threadpool_limits
        blas_threads = threadpool_limits(limits=threads, user_api="blas")
    except ImportError:
        blas_threads = contextlib.nullcontext()
    results = []
    with blas_threads, tempfile.TemporaryDirectory() as tmpdir:
        sgemm = sgemm_products(torch)
        ceilings = {k: SGEMM_FLOPS / t / 1e9 for k, t in measure_interleaved(sgemm, *timing).items()}
        ceiling = max(ceilings.values())
        best = max(ceilings, key=ceilings.get)
        print("sgemm 2048x2048: " + ", ".join(f"{k} {v:.1f}" for k, v in ceilings.items())
              + f" GFLOP/s at the start; each case's ceiling: {best} in its forward rounds\n")
        for (B, T, D, H) in cases:
            tc = TorchCase(torch, B, T, D, H, seed=B * 1000 + H)
            lc = LstmfastCase(ops, tc)
            oc = OrtCase(torch, ort, tc, threads, tmpdir) if ort else None
            # The three compute the same thing: check before timing.
            y_torch = tc.forward().numpy()
            max_diff = {"lstmfast": float(np.max(np.abs(lc.forward() - y_torch))),
                        "lstmfast_packed": float(np.max(np.abs(lc.forward_packed() - y_torch)))}
            if oc:
                max_diff["onnxruntime"] = float(np.max(np.abs(oc.forward() - y_torch)))
            flops = 2.0 * B * T * 4 * H * (D + H)
            r = {"B": B, "T": T, "D": D, "H": H, "forward_flops": flops, "max_abs_diff_vs_torch": max_diff}
            fns = {"lstmfast": lc.forward, "lstmfast_packed": lc.forward_packed,
                   "torch": tc.forward, "onnxruntime": oc.forward if oc else None, "sgemm": sgemm[best]}
            if args.policy_ab:
                fns = policy_ab(lstmfast, fns, ("lstmfast", "lstmfast_packed"))
            fwd = measure_interleaved(fns, *timing)
            ab = {f"forward_{k[:-6]}": fwd[k[:-6]] / fwd.pop(k) for k in list(fwd) if k.endswith("_fixed")}
            case_ceiling = SGEMM_FLOPS / fwd.pop("sgemm") / 1e9
            r["sgemm_ceiling_gflops"] = case_ceiling
            r["forward_ms"] = {k: fwd[k] * 1e3 if k in fwd else None
                               for k in ("lstmfast", "lstmfast_packed", "torch", "onnxruntime")}
            if not args.no_train:
                fns = {"lstmfast": lc.train_step, "torch": tc.train_step,
                       "lstmfast_with_dx": lambda: lc.train_step(True)}
                if args.policy_ab:
                    fns = policy_ab(lstmfast, fns, ("lstmfast",))
                train = measure_interleaved(fns, *timing)
                ab.update({f"train_{k[:-6]}": train[k[:-6]] / train.pop(k) for k in list(train)
                           if k.endswith("_fixed")})
                r["train_ms"] = {k: v * 1e3 for k, v in train.items()}
            if ab:  # time under the adaptive thread policy / time under the fixed one
                r["policy_ab_adaptive_over_fixed"] = ab
            f = r["forward_ms"]
            r["forward_ratio_vs_torch"] = f["lstmfast"] / f["torch"]
            r["forward_ratio_vs_onnxruntime"] = f["lstmfast"] / f["onnxruntime"] if oc else None
            r["forward_packed_ratio_vs_onnxruntime"] = f["lstmfast_packed"] / f["onnxruntime"] if oc else None
            r["forward_gflops"] = {k: (flops / v / 1e6 if v else None) for k, v in f.items()}
            r["forward_pct_of_ceiling"] = {k: (100.0 * g / case_ceiling if g else None)
                                           for k, g in r["forward_gflops"].items()}
            if "train_ms" in r:
                t = r["train_ms"]
                r["train_ratio_vs_torch"] = t["lstmfast"] / t["torch"]
                r["train_with_dx_ratio_vs_torch"] = t["lstmfast_with_dx"] / t["torch"]
                r["train_gflops"] = {k: 3 * flops / v / 1e6 for k, v in t.items()}
                r["train_pct_of_ceiling"] = {k: 100.0 * g / case_ceiling for k, g in r["train_gflops"].items()}
            results.append(r)
            print(f"  ran ({B}, {T}, {D}, {H})", file=sys.stderr, flush=True)

    print("forward, full-sequence output (ms)                                              "
          "% of sgemm ceiling (GFLOP/s)")
    print(f"{'case (B, T, D, H)':<22}{'lstmfast':>9}{'packed':>9}{'torch':>9}{'ORT':>9}{'/torch':>8}"
          f"{'/ORT':>7}{'packed/ORT':>11}{'lstmfast':>10}{'packed':>8}{'torch':>7}{'ORT':>7}{'ceiling':>9}")
    for r in results:
        f, pc = r["forward_ms"], r["forward_pct_of_ceiling"]
        case = f"({r['B']}, {r['T']}, {r['D']}, {r['H']})"
        print(f"{case:<22}{fmt(f['lstmfast'], '9.2f')}{fmt(f['lstmfast_packed'], '9.2f')}"
              f"{fmt(f['torch'], '9.2f')}{fmt(f['onnxruntime'], '9.2f')}"
              f"{fmt(r['forward_ratio_vs_torch'], '8.2f')}{fmt(r['forward_ratio_vs_onnxruntime'], '7.2f')}"
              f"{fmt(r['forward_packed_ratio_vs_onnxruntime'], '11.2f')}"
              f"{fmt(pc['lstmfast'], '9.0f')}%{fmt(pc['lstmfast_packed'], '7.0f')}%"
              f"{fmt(pc['torch'], '6.0f')}%{fmt(pc['onnxruntime'], '6.0f')}%"
              f"{r['sgemm_ceiling_gflops']:9.1f}")
    if not args.no_train:
        print("\ntrain step: forward + MSE + backward + Adam (ms)                   % of sgemm ceiling")
        print(f"{'case (B, T, D, H)':<22}{'lstmfast':>9}{'+dx':>9}{'torch':>9}{'/torch':>8}{'+dx/torch':>10}"
              f"{'lstmfast':>10}{'torch':>7}")
        for r in results:
            t, pc = r["train_ms"], r["train_pct_of_ceiling"]
            case = f"({r['B']}, {r['T']}, {r['D']}, {r['H']})"
            print(f"{case:<22}{t['lstmfast']:9.2f}{t['lstmfast_with_dx']:9.2f}{t['torch']:9.2f}"
                  f"{r['train_ratio_vs_torch']:8.2f}{r['train_with_dx_ratio_vs_torch']:10.2f}"
                  f"{pc['lstmfast']:9.0f}%{pc['torch']:6.0f}%")
    if args.policy_ab:
        print("\nthread policy A/B on this machine: time under the adaptive policy (the default) / time "
              "under the fixed one, same rounds")
        for r in results:
            case = f"({r['B']}, {r['T']}, {r['D']}, {r['H']})"
            print(f"{case:<22}" + "  ".join(f"{k} {v:.3f}" for k, v in r["policy_ab_adaptive_over_fixed"].items()))
    worst = max(max(r["max_abs_diff_vs_torch"].values()) for r in results)
    print(f"\nlargest |output − torch output| over all cases: {worst:.1e}")
    print("ratios below 1 mean lstmfast is faster; packed: weights packed once (ops.pack_lstm_weights),\n"
          "as ONNX Runtime packs them when it loads the model; the train step's FLOPs are counted as 3x the forward's;\n"
          "+dx: lstmfast's step also computing the input gradient, which torch's step computes (the %\n"
          "of ceiling counts that work for every column, so lstmfast's step without dx shows an effective rate)")

    if args.json:
        doc = {"machine": machine, "sgemm_ceiling_gflops_at_start": ceiling, "sgemm_gflops_at_start": ceilings,
               "sgemm_ceiling_per_case": best, "quick": args.quick,
               "timing": {"warmup": timing[0], "min_repeats": timing[1], "min_seconds": timing[2],
                          "rounds": timing[3],
                          "statistic": "median"},
               "denormals": "flushed: lstmfast in its kernels, torch.set_flush_denormal(True), "
                            "ONNX Runtime session.set_denormal_as_zero",
               "cases": results}
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
