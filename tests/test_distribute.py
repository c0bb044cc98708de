"""Data-parallel fit over MPI (lstmfast.distribute): runs of tests/mpi_fit_script.py under
`mpiexec -n 2` and `-n 3` (oversubscribed on two cores) against the same script in one process."""

import glob
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import lstmfast
import lstmfast as lf

pytest.importorskip("mpi4py", reason="lstmfast[mpi] is not installed")
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec")

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi_fit_script.py")


def run(tmp_path, ranks, case="arrays", timeout=180, **opts):
    """Runs the script on `ranks` ranks (0: one plain process); returns (results per rank, weights
    per rank, the completed process)."""
    out = tmp_path / f"run{len(list(tmp_path.iterdir()))}-{ranks}-{case}"
    out.mkdir()
    args = [sys.executable, SCRIPT, str(out), case] + [f"{k}={v}" for k, v in opts.items()]
    if ranks:
        args = [MPIEXEC, "-n", str(ranks)] + args + ["distribute=1"]
    env = {k: v for k, v in os.environ.items() if k not in ("LSTMFAST_NUM_THREADS", "OMP_NUM_THREADS")}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    results, weights = [], []
    for path in sorted(glob.glob(str(out / "rank*.json"))):
        with open(path) as f:
            results.append(json.load(f))
        with np.load(path.replace(".json", ".npz")) as w:
            weights.append([w[k] for k in sorted(w.files, key=lambda k: int(k.split("_")[1]))])
    return results, weights, proc, out


def assert_same_weights(a, b, tol=0.0):
    assert len(a) == len(b)
    for wa, wb in zip(a, b):
        if tol == 0.0:
            np.testing.assert_array_equal(wa, wb)
        else:
            np.testing.assert_allclose(wa, wb, rtol=0, atol=tol)


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    results, weights, proc, out = run(tmp_path_factory.mktemp("alone"), 0)
    assert proc.returncode == 0, proc.stderr
    return results[0], weights[0], out


@pytest.mark.parametrize("ranks", [2, 3])
def test_whole_arrays_train_as_one_process_with_the_same_global_batch(tmp_path, alone, ranks):
    # 50 samples in batches of 16: the last batch of 2 leaves the third rank without a sample.
    results, weights, proc, out = run(tmp_path, ranks)
    assert proc.returncode == 0, proc.stderr
    assert len(results) == ranks
    for r, w in zip(results, weights):
        assert_same_weights(w, weights[0])                 # every rank ends with the same weights
        assert_same_weights(w, alone[1], tol=1e-10)        # ... those of one process (float64)
        for key, values in alone[0]["history"].items():   # logs of all the samples, on every rank
            np.testing.assert_allclose(r["history"][key], values, rtol=1e-10, atol=0)
        for key, value in alone[0]["evaluate"].items():
            assert r["evaluate"][key] == pytest.approx(value, rel=1e-10)
        assert r["epochs_seen"] == 3                       # on_epoch_end once per epoch per rank
        assert r["threads"] == max(1, lstmfast.physical_cores() // ranks)  # the cores shared out
    for r in range(ranks):                                 # predict: every rank gathers all the parts
        np.testing.assert_allclose(np.load(out / f"predict{r}.npy"), np.load(alone[2] / "predict0.npy"),
                                   rtol=0, atol=1e-10)
    with open(out / "log.csv") as f:                       # CSVLogger on rank 0 only: one row per epoch
        assert len(f.read().strip().splitlines()) == 1 + 3
    assert os.path.exists(out / "model.lstmfast")
    assert not glob.glob(str(out / ".*tmp"))


def test_the_shared_out_update_gives_the_bits_of_every_rank_updating_all(tmp_path):
    # Two ranks: the reduce-scatter adds the same two numbers the allreduce adds, and each part's
    # update is the whole update's arithmetic on that part.
    shared, w_shared, proc, _ = run(tmp_path, 2, shuffle=1)
    assert proc.returncode == 0, proc.stderr
    every, w_every, proc, _ = run(tmp_path, 2, shuffle=1, shard_optimizer=0)
    assert proc.returncode == 0, proc.stderr
    for r in range(2):
        assert_same_weights(w_shared[r], w_every[r])
        assert shared[r]["history"] == every[r]["history"]


@pytest.mark.parametrize("ranks,opts", [(2, {"clipnorm": 0.05}), (3, {"global_clipnorm": 0.05}),
                                        (2, {"optimizer": "rmsprop", "ema": 1}), (3, {"ema": 1})])
def test_the_shared_out_update_trains_as_one_process(tmp_path, ranks, opts):
    # clipping by norm sums the squares of every rank's part; EMA's average is gathered at the end
    results, weights, proc, _ = run(tmp_path, ranks, **opts)
    assert proc.returncode == 0, proc.stderr
    one, w1, proc1, _ = run(tmp_path, 0, **opts)
    assert proc1.returncode == 0, proc1.stderr
    for r, w in zip(results, weights):
        assert_same_weights(w, w1[0], tol=1e-10)
        np.testing.assert_allclose(r["history"]["loss"], one[0]["history"]["loss"], rtol=1e-10)


def test_checkpoints_hold_the_whole_optimizer_state(tmp_path):
    # every epoch (the state gathered before the callbacks) and every 2 steps (then every rank
    # keeps the whole update): the saved states are those of one process.
    _, _, proc, out = run(tmp_path, 2, checkpoint_every=2)
    assert proc.returncode == 0, proc.stderr
    _, _, proc1, out1 = run(tmp_path, 0, checkpoint_every=2)
    assert proc1.returncode == 0, proc1.stderr
    for name in ("step.lstmfast", "model.lstmfast"):
        got = lf.models.load_model(out / name).optimizer.get_state()
        want = lf.models.load_model(out1 / name).optimizer.get_state()
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-10)
        assert np.any(want["m"] != 0)


def test_reading_the_split_optimizer_state_mid_epoch_ends_the_job_with_why(tmp_path):
    _, _, proc, _ = run(tmp_path, 2, peek_state=1, timeout=120)
    assert proc.returncode != 0
    assert "split over the ranks" in proc.stderr + proc.stdout


def test_train_on_batch_splits_the_batch_over_the_ranks(tmp_path, alone):
    _, _, proc, out = run(tmp_path, 2, train_on_batch=1)
    assert proc.returncode == 0, proc.stderr
    _, _, proc1, out1 = run(tmp_path, 0, train_on_batch=1)
    want = np.load(out1 / "rank0_tob.npz")
    for r in (0, 1):
        got = np.load(out / f"rank{r}_tob.npz")
        for k in want.files:
            np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-10)


def test_uneven_shards_take_every_sample_and_end_alike(tmp_path):
    # 50 samples over 3 ranks: shards of 16, 17 and 17; each takes its share of every batch of 16.
    results, weights, proc, _ = run(tmp_path, 3, data="shard")
    assert proc.returncode == 0, proc.stderr
    for r, w in zip(results, weights):
        assert_same_weights(w, weights[0])
        assert r["history"] == results[0]["history"]
        assert r["samples_last_epoch"] == 50   # evaluate of the shards: every sample once
    loss = results[0]["history"]["loss"]
    assert loss[-1] < loss[0]


def test_generators_of_different_lengths_neither_hang_nor_drop_batches(tmp_path):
    # rank 0 yields 3 batches of 8, rank 1 yields 5: the epoch has 5 steps and 64 samples.
    results, weights, proc, _ = run(tmp_path, 2, case="generator", data="shard", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_same_weights(weights[1], weights[0])
    assert results[0]["history"] == results[1]["history"]


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_pydataset_given_to_every_rank_trains_as_one_process(tmp_path, ranks):
    # shuffled batch order: drawn on rank 0 and shared, so the ranks split the same batches
    results, weights, proc, _ = run(tmp_path, ranks, case="pydataset", shuffle=1, unseeded=1)
    assert proc.returncode == 0, proc.stderr
    one, w1, proc1, _ = run(tmp_path, 0, case="pydataset", shuffle=1)
    assert proc1.returncode == 0, proc1.stderr
    for r, w in zip(results, weights):
        assert_same_weights(w, w1[0], tol=1e-10)
        np.testing.assert_allclose(r["history"]["loss"], one[0]["history"]["loss"], rtol=1e-10)


def test_deterministic_mode_gives_the_same_bits_from_run_to_run(tmp_path):
    runs = []
    for i in range(2):
        (tmp_path / str(i)).mkdir()
        runs.append(run(tmp_path / str(i), 3, shuffle=1, deterministic=1))
    for results, weights, proc, _ in runs:
        assert proc.returncode == 0, proc.stderr
    assert_same_weights(runs[0][1][0], runs[1][1][0])
    assert_same_weights(runs[0][1][2], runs[0][1][0])
    assert runs[0][0][0]["history"] == runs[1][0][0]["history"]


def test_training_resumes_from_a_checkpoint_on_another_number_of_ranks(tmp_path, alone):
    # 2 epochs on 2 ranks, then the third from the saved model on 3 ranks: as 3 epochs in one process.
    _, _, proc, first = run(tmp_path, 2, epochs=2)
    assert proc.returncode == 0, proc.stderr
    results, weights, proc, _ = run(tmp_path, 3, epochs=3, initial_epoch=2, resume=first / "model.lstmfast")
    assert proc.returncode == 0, proc.stderr
    assert [r["epochs_seen"] for r in results] == [1, 1, 1]
    for w in weights:
        assert_same_weights(w, alone[1], tol=1e-10)


def test_a_rank_that_stops_training_stops_every_rank(tmp_path):
    results, weights, proc, _ = run(tmp_path, 2, stop_rank=1, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [r["epochs_seen"] for r in results] == [1, 1]
    assert_same_weights(weights[1], weights[0])


def test_a_failing_rank_ends_the_job_with_its_error(tmp_path):
    start = time.monotonic()
    _, _, proc, _ = run(tmp_path, 2, fail_rank=1, timeout=120)
    assert time.monotonic() - start < 60
    assert proc.returncode != 0
    assert ("lstmfast.distribute: rank 1 of 2 failed (RuntimeError: this rank fails on purpose); "
            "ending the job") in proc.stderr


def test_without_mpi_the_module_is_inert():
    assert lstmfast.distribute.current() is None
    assert lstmfast.distribute.rank() == 0 and lstmfast.distribute.size() == 1
    assert lstmfast.distribute.is_chief()
    x = np.arange(10)
    assert lstmfast.distribute.shard(x) is x
    with pytest.raises(ValueError, match="`data` must be 'whole' or 'shard'"):
        lstmfast.distribute.Strategy(None, data="all")


def test_command_line_trains_data_parallel_and_writes_one_model_directory(tmp_path):
    out = tmp_path / "co2"
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "lstmfast", "forecast", "train", "--quick",
                           "--no-evaluate", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("model saved to") == 1   # rank 0 prints; the other rank is silent
    assert {"model.lstmfast", "pipeline.json"} <= set(os.listdir(out))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]   # no staging directory left


def test_command_line_error_on_one_rank_ends_the_job(tmp_path):
    bad = tmp_path / "series.csv"
    bad.write_text("date,value\n2020-01-01,1\n")
    start = time.monotonic()
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "lstmfast", "forecast", "train", "--data", str(bad),
                           "--out", str(tmp_path / "m")], capture_output=True, text=True, timeout=120)
    assert time.monotonic() - start < 60
    assert proc.returncode != 0
    assert "lstmfast forecast train: error:" in proc.stderr


def test_a_killed_rank_ends_the_job(tmp_path):
    code = ("import os, sys, numpy as np, lstmfast as lf\n"
            "lf.distribute.init()\n"
            "x = np.random.rand(512, 10, 4).astype('f4'); y = np.random.rand(512, 1).astype('f4')\n"
            "m = lf.Sequential([lf.Input((10, 4)), lf.layers.LSTM(8), lf.layers.Dense(1)]); m.compile('adam', 'mse')\n"
            "m.fit(x[:64], y[:64], verbose=0)\n"
            f"open(os.path.join({str(tmp_path)!r}, f'pid{{lf.distribute.rank()}}'), 'w').write(str(os.getpid()))\n"
            "m.fit(x, y, epochs=100000, verbose=0)\n")
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "pid1").exists() or not (tmp_path / "pid1").read_text():
            assert proc.poll() is None, "the job ended before training"
            assert time.monotonic() < deadline, "the ranks did not start training"
            time.sleep(0.1)
        os.kill(int((tmp_path / "pid1").read_text()), 9)
        start = time.monotonic()
        proc.wait(timeout=60)
        assert time.monotonic() - start < 30
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)  # the launcher and every rank it started


def _tiny_reviews(path):
    rng = np.random.default_rng(0)
    pos, neg = ["great", "wonderful", "moving", "superb"], ["dull", "awful", "boring", "tedious"]
    filler = ["the", "film", "was", "plot", "actors", "and"]
    lines = ["text,label"]
    for i in range(240):
        words = list(rng.choice(pos if i % 2 else neg, 5)) + list(rng.choice(filler, 7))
        rng.shuffle(words)
        lines.append(f"{' '.join(words)},{i % 2}")
    path.write_text("\n".join(lines) + "\n")


def _tiny_pairs(path):
    rng = np.random.default_rng(0)
    words = {"cat": "chat", "dog": "chien", "house": "maison", "red": "rouge", "big": "grand", "car": "voiture"}
    lines = []
    for _ in range(300):
        ks = list(rng.choice(list(words), 3, replace=False))
        lines.append(" ".join(ks) + "\t" + " ".join(words[k] for k in ks))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("pipeline", ["sentiment", "translate"])
def test_sentiment_and_translation_train_under_mpiexec(tmp_path, pipeline):
    data = tmp_path / ("reviews.csv" if pipeline == "sentiment" else "pairs.tsv")
    (_tiny_reviews if pipeline == "sentiment" else _tiny_pairs)(data)
    extra = ["--epochs", "2"] + ([] if pipeline == "sentiment" else ["--level", "word", "--units", "16", "--beam", "2"])
    out = tmp_path / "model"
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "lstmfast", pipeline, "train", "--data", str(data),
                           "--out", str(out)] + extra, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("model saved to") == 1
    assert {"model.lstmfast", "pipeline.json", "metrics.json"} <= set(os.listdir(out))
