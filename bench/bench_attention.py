"""Times one training step of a Luong-attention encoder-decoder: lstmfast against the same model
hand-written in PyTorch and written in Keras 3 (torch backend), each framework in its own process
as its users run it, taking turns.

    python bench/bench_attention.py              # B=64, T_enc=T_dec=20, H=256, 60 one-hot symbols
    python bench/bench_attention.py --quick      # fewer rounds
    python bench/bench_attention.py --json out.json
    python bench/bench_attention.py --profile    # also: how much of each step the LSTMs take

The model: encoder LSTM(H, return_sequences, return_state) over one-hot source rows; decoder
LSTM(H, return_sequences) over one-hot target rows, started from the encoder's (h, c);
Attention()([decoder, encoder]) (dot scores); Concatenate([decoder, context]); Dense(V, softmax);
categorical crossentropy; Adam. PyTorch: nn.LSTM twice, torch.bmm for the scores and the
context, nn.Linear, cross_entropy on the logits, torch.optim.Adam. Every framework runs float32
on the same number of threads (--threads, default 2); medians over --rounds rounds of --steps
steps each, warm-up steps excluded, the frameworks taking turns so that a slow spell of the
machine hits all of them alike.

Each framework has a process of its own, so each runs with its own allocator settings: lstmfast's
first training step sets glibc's malloc to keep freed memory (docs/architecture.md), which PyTorch
and Keras do not do. The row "pytorch, lstmfast's malloc" is PyTorch given that same setting
(through MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ in its environment): the difference the
allocator alone makes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from machine import cpu_model

os.environ.setdefault("KERAS_BACKEND", "torch")


def data(b, t, v, seed=0):
    rng = np.random.default_rng(seed)
    eye = np.eye(v, dtype=np.float32)
    enc, dec = eye[rng.integers(0, v, (b, t))], eye[rng.integers(0, v, (b, t))]
    return enc, dec, np.roll(dec, -1, axis=1)


def luong(M, Input, v, h):
    enc_in, dec_in = Input(shape=(None, v)), Input(shape=(None, v))
    enc_seq, sh, sc = M.LSTM(h, return_sequences=True, return_state=True)(enc_in)
    dec_seq = M.LSTM(h, return_sequences=True)(dec_in, initial_state=[sh, sc])
    context = M.Attention()([dec_seq, enc_seq])
    out = M.Dense(v, activation="softmax")(M.Concatenate()([dec_seq, context]))
    return [enc_in, dec_in], out


def keras_like_step(module, v, h, batch):
    """A train_on_batch closure for lstmfast or Keras."""
    enc, dec, target = batch
    inputs, out = luong(module.layers, module.Input, v, h)
    model = module.Model(inputs, out)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return lambda: model.train_on_batch([enc, dec], target)


def torch_step(torch, v, h, batch):
    nn = torch.nn
    enc, dec, target = (torch.from_numpy(a) for a in batch)
    labels = target.argmax(-1)

    class Luong(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.LSTM(v, h, batch_first=True)
            self.decoder = nn.LSTM(v, h, batch_first=True)
            self.out = nn.Linear(2 * h, v)

        def forward(self, src, tgt):
            enc_seq, state = self.encoder(src)
            dec_seq, _ = self.decoder(tgt, state)
            weights = torch.softmax(torch.bmm(dec_seq, enc_seq.transpose(1, 2)), dim=-1)
            context = torch.bmm(weights, enc_seq)
            return self.out(torch.cat([dec_seq, context], dim=-1))

    model = Luong()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)

    def step():
        opt.zero_grad()
        logits = model(enc, dec)
        loss = nn.functional.cross_entropy(logits.reshape(-1, v), labels.reshape(-1))
        loss.backward()
        opt.step()
        return float(loss.detach())
    return step


def with_numpy_dense(step):
    """The step with lstmfast's Dense products computed by numpy (as before ops.matmul existed)."""
    import numpy
    from lstmfast.layers import dense

    def numpy_product(a, b, bias=None, out=None, transpose_a=False, transpose_b=False):
        a, b = (a.T if transpose_a else a), (b.T if transpose_b else b)
        out = numpy.matmul(a, b, out=out)
        if bias is not None:
            out += bias
        return out

    def run():
        own, dense.product = dense.product, numpy_product
        try:
            return step()
        finally:
            dense.product = own
    return run


def lstm_share(name, step, torch, steps=20):
    """(ms per step, ms per step inside the LSTM kernels) over `steps` steps of one framework:
    lstmfast's lstm_forward/lstm_backward calls (cProfile), PyTorch's LSTM operators (its profiler)."""
    if name == "lstmfast":
        import cProfile
        import pstats
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(steps):
            step()
        prof.disable()
        stats = pstats.Stats(prof).stats
        total = max(v[3] for v in stats.values())  # the outermost call's cumulative time
        lstm = sum(v[2] for (_, _, fn), v in stats.items() if "lstm_forward_f" in fn or "lstm_backward_f" in fn)
        return total / steps * 1e3, lstm / steps * 1e3
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    lstm = sum(e.self_cpu_time_total for e in events if "rnn" in e.key.lower() or "lstm" in e.key.lower())
    return total / steps / 1e3, lstm / steps / 1e3


ANSWER = "answer: "  # how a worker's answer line begins
PAUSE = 0.5  # seconds between one framework's round and the next's

# The frameworks timed, each in its own process: name → (framework, extra environment).
WORKERS = {
    "lstmfast": ("lstmfast", {}),
    "pytorch": ("pytorch", {}),
    "keras": ("keras", {}),
}


def lstmfast_malloc_env():
    """The environment that gives glibc's malloc lstmfast's setting from a process's start."""
    from lstmfast import _memory
    return {"MALLOC_MMAP_THRESHOLD_": str(_memory.MMAP_THRESHOLD),
            "MALLOC_TRIM_THRESHOLD_": str(_memory.TRIM_THRESHOLD)}


def make_step(framework, args):
    """(the step, torch or None): lstmfast's process never imports torch, as its users' need not."""
    batch = data(args.batch, args.steps_len, args.vocab)
    if framework in ("pytorch", "keras"):
        import torch

        torch.set_num_threads(args.threads)
        torch.set_flush_denormal(True)
        if framework == "pytorch":
            return torch_step(torch, args.vocab, args.units, batch), torch
        import keras
        return keras_like_step(keras, args.vocab, args.units, batch), torch
    import lstmfast

    lstmfast.set_num_threads(args.threads)
    step = keras_like_step(lstmfast, args.vocab, args.units, batch)
    if framework == "lstmfast-numpy-dense":
        step = with_numpy_dense(step)
    return step, None


def worker(framework, args):
    """Serve the parent: each line "round" runs 2 warm-up and --steps timed steps and answers
    their times; "profile" answers lstm_share's; "quit" ends."""
    step, torch = make_step(framework, args)
    step()  # the first step builds and compiles
    print(ANSWER + json.dumps("ready"), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "round":
            for _ in range(2):
                step()  # warm-up
            times = []
            for _ in range(args.steps):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
            answer = times
        elif command == "profile":
            answer = lstm_share(framework, step, torch)
        else:
            break
        print(ANSWER + json.dumps(answer), flush=True)
    return 0


class Worker:
    """A framework's process, asked for a round at a time."""

    def __init__(self, framework, env, argv):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", framework, *argv],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **env})
        self.answer()  # started: one at a time, so that no start competes with another's steps

    def answer(self):
        for line in self.proc.stdout:  # a library may print lines of its own
            if line.startswith(ANSWER):
                return json.loads(line[len(ANSWER):])
        raise RuntimeError(f"the worker process {self.proc.args[3]!r} ended (status {self.proc.wait()})")

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.answer()
        time.sleep(PAUSE)  # the threads of the framework that ran last stop spinning
        return answer

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps-len", type=int, default=20, help="T_enc = T_dec")
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--vocab", type=int, default=60)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--quick", action="store_true", help="2 rounds of 5 steps")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--numpy-dense", action="store_true",
                   help="also time lstmfast with Dense's products on numpy's BLAS (one thread) instead of its own")
    p.add_argument("--profile", action="store_true",
                   help="also profile lstmfast and PyTorch: the time inside their LSTM kernels")
    p.add_argument("--no-malloc-row", action="store_true",
                   help="leave out PyTorch with lstmfast's malloc setting")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 2, 5
    if args.worker:
        return worker(args.worker, args)
    shape = ["--batch", str(args.batch), "--steps-len", str(args.steps_len), "--units", str(args.units),
             "--vocab", str(args.vocab), "--threads", str(args.threads), "--steps", str(args.steps)]
    workers = dict(WORKERS)
    if not args.no_malloc_row:
        workers["pytorch, lstmfast's malloc"] = ("pytorch", lstmfast_malloc_env())
    if args.numpy_dense:
        workers["lstmfast-numpy-dense"] = ("lstmfast-numpy-dense", {})
    procs = {name: Worker(framework, env, shape) for name, (framework, env) in workers.items()}
    try:
        times = {name: [] for name in procs}
        for _ in range(args.rounds):
            for name, w in procs.items():
                times[name] += w.ask("round")
        med = {name: statistics.median(t) * 1e3 for name, t in times.items()}
        print(f"Luong attention encoder-decoder, one training step: B={args.batch}, T_enc=T_dec={args.steps_len}, "
              f"H={args.units}, V={args.vocab}, {args.threads} threads, {cpu_model()}; "
              "each framework in its own process")
        for name, ms in med.items():
            print(f"  {name:28s} {ms:8.2f} ms   lstmfast / it {med['lstmfast'] / ms:.2f}")
        profile = {}
        if args.profile:
            for name in ("lstmfast", "pytorch"):
                total, lstm = profile[name] = procs[name].ask("profile")
                print(f"  {name:9s} profiled {total:6.2f} ms a step, LSTM kernels {lstm:6.2f} ms ({lstm / total:.0%})")
    finally:
        for w in procs.values():
            w.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "median_ms": med, "profile_ms": profile, "cpu": cpu_model()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
