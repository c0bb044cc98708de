"""Times an epoch fed from disk against the same epoch from arrays in memory.

    python bench/bench_data.py            # LSTM(128) on (64, 50, 32) batches, 48 batches an epoch

The disk-fed epoch reads every batch with numpy.load from its own .npy file inside a PyDataset,
in lstmfast's background reader thread, while the kernels train on the batch before; the
in-memory epoch slices the same arrays. The two take turns for --rounds rounds (default 5);
medians of the epochs after a warm-up epoch, and their ratio.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=48)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import lstmfast as lf
    from lstmfast import layers as L

    lf.set_num_threads(args.threads)
    b, t, d = 64, 50, 32
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batches * b, t, d)).astype(np.float32)
    y = rng.standard_normal((args.batches * b, 1)).astype(np.float32)

    class OnDisk(lf.utils.PyDataset):
        def __init__(self, folder):
            super().__init__()
            self.folder = folder

        def __len__(self):
            return args.batches

        def __getitem__(self, i):
            return (np.load(os.path.join(self.folder, f"x{i}.npy")), np.load(os.path.join(self.folder, f"y{i}.npy")))

    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.batches):
            np.save(os.path.join(folder, f"x{i}.npy"), x[i * b:(i + 1) * b])
            np.save(os.path.join(folder, f"y{i}.npy"), y[i * b:(i + 1) * b])
        lf.utils.set_random_seed(0)
        model = lf.Sequential([L.Input((t, d)), L.LSTM(128), L.Dense(1)])
        model.compile("adam", "mse")
        feeds = {"memory": lambda: model.fit(x, y, batch_size=b, epochs=1, shuffle=False, verbose=0),
                 "disk": lambda: model.fit(OnDisk(folder), epochs=1, verbose=0)}
        times = {k: [] for k in feeds}
        for name, run in feeds.items():
            run()  # warm-up
        for _ in range(args.rounds):
            for name, run in feeds.items():
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"epoch of {args.batches} batches of ({b}, {t}, {d}) into LSTM(128), {args.threads} threads")
    for k, v in med.items():
        print(f"  {k:7s} {v * 1e3:8.1f} ms")
    print(f"  disk / memory {med['disk'] / med['memory']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
