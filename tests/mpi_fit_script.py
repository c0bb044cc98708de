"""A training script run by tests/test_distribute.py, alone or under `mpiexec -n N`:

    python mpi_fit_script.py OUT_DIR CASE [options as key=value]

It builds a small float64 LSTM model from a fixed seed, trains it, and writes what each rank ends
with to OUT_DIR/rank{r}.npz (weights, the loss history, evaluate's result, samples counted). With
distribute=1 it calls lstmfast.distribute.init() first — the one line a script adds."""

import json
import os
import sys

import numpy as np

import lstmfast as lf

out_dir, case = sys.argv[1], sys.argv[2]
opts = dict(a.split("=", 1) for a in sys.argv[3:])
lf.config.set_floatx("float64")
if opts.get("distribute") == "1":
    lf.distribute.init(data=opts.get("data", "whole"), deterministic=opts.get("deterministic") == "1",
                       shard_optimizer=opts.get("shard_optimizer", "1") == "1")
rank = lf.distribute.rank()

rng = np.random.default_rng(0)
n, T, D = int(opts.get("n", 50)), 6, 3
x = rng.standard_normal((n, T, D))
y = np.tanh(x.sum(axis=(1, 2)))[:, None] + 0.1 * rng.standard_normal((n, 1))
lf.utils.set_random_seed(1)
if "resume" in opts:  # a checkpoint written by another run, maybe on another number of ranks
    model = lf.models.load_model(opts["resume"])
else:
    model = lf.Sequential([lf.Input((T, D)), lf.layers.LSTM(5), lf.layers.Dense(1)])
    clip = {k: float(opts[k]) for k in ("clipnorm", "global_clipnorm") if k in opts}
    optimizer = (lf.optimizers.RMSprop(learning_rate=0.01, momentum=0.5, centered=True, **clip)
                 if opts.get("optimizer") == "rmsprop" else
                 lf.optimizers.Adam(learning_rate=0.01, use_ema=opts.get("ema") == "1", **clip))
    model.compile(optimizer, "mse", metrics=["mae"])


class Count(lf.callbacks.Callback):
    """Epoch ends seen on this rank."""

    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


class Fail(lf.callbacks.Callback):
    def on_train_batch_end(self, step, logs=None):
        if step == 2 and lf.distribute.rank() == int(opts["fail_rank"]):
            raise RuntimeError("this rank fails on purpose")


class StopOneRank(lf.callbacks.Callback):
    """Stops training on one rank only (as a callback reading its own clock might)."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0 and lf.distribute.rank() == int(opts["stop_rank"]):
            self.model.stop_training = True


class PeekState(lf.callbacks.Callback):
    """Reads the optimizer's state in the middle of an epoch, on rank 0 only."""

    def on_train_batch_end(self, step, logs=None):
        if step == 1 and lf.distribute.rank() == 0:
            self.model.optimizer.get_state()


count = Count()
callbacks = [count, lf.callbacks.CSVLogger(os.path.join(out_dir, "log.csv"))]
if "checkpoint_every" in opts:  # saves the model (and the optimizer's state) every few steps
    callbacks.append(lf.callbacks.ModelCheckpoint(os.path.join(out_dir, "step.lstmfast"),
                                                  save_freq=int(opts["checkpoint_every"])))
if opts.get("peek_state") == "1":
    callbacks.append(PeekState())
if "fail_rank" in opts:
    callbacks.append(Fail())
if "stop_rank" in opts:
    callbacks.append(StopOneRank())
epochs = int(opts.get("epochs", 3))
batch_size = int(opts.get("batch_size", 16))
# data=shard: every array given to fit and evaluate is this rank's part only.
part = lf.distribute.shard if opts.get("data") == "shard" else (lambda a: a)
if case == "arrays":
    hist = model.fit(part(x), part(y), batch_size=batch_size, epochs=epochs, shuffle=opts.get("shuffle") == "1",
                     validation_data=(part(x[:20]), part(y[:20])), callbacks=callbacks, verbose=0,
                     initial_epoch=int(opts.get("initial_epoch", 0)))
elif case == "generator":  # data=shard: each rank its own generator, of different lengths
    batches = int(opts.get("batches", 3)) + 2 * rank

    def gen():
        for e in range(epochs):
            for i in range(batches):
                j = (i * 7 + rank * 3) % (n - 8)
                yield x[j:j + 8], y[j:j + 8]

    hist = model.fit(gen(), epochs=1, callbacks=callbacks, verbose=0)
elif case == "pydataset":  # data=whole: every rank the same PyDataset, its batches shuffled

    class Batches(lf.utils.PyDataset):
        def __len__(self):
            return -(-n // batch_size)

        def __getitem__(self, i):
            return x[i * batch_size:(i + 1) * batch_size], y[i * batch_size:(i + 1) * batch_size]

    lf.utils.set_random_seed(100 + rank if opts.get("unseeded") == "1" else 100)  # the order: from rank 0
    hist = model.fit(Batches(), epochs=epochs, shuffle=opts.get("shuffle") == "1", callbacks=callbacks,
                     verbose=0)
else:
    raise SystemExit(f"unknown case {case}")
result = model.evaluate(part(x), part(y), batch_size=7, verbose=0, return_dict=True)
predicted = model.predict(x, batch_size=7, verbose=0)  # whole on every rank: each predicts a part
model.save(os.path.join(out_dir, "model.lstmfast"))
np.savez(os.path.join(out_dir, f"rank{rank}.npz"), *model.get_weights())
np.save(os.path.join(out_dir, f"predict{rank}.npy"), predicted)
with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
    json.dump({"history": hist.history, "evaluate": result, "epochs_seen": count.epochs,
               "samples_last_epoch": model._loss_count, "threads": lf.get_num_threads()}, f)
if opts.get("train_on_batch") == "1":  # then a few train_on_batch calls on the whole data
    for _ in range(3):
        model.train_on_batch(x[:21], y[:21])
    np.savez(os.path.join(out_dir, f"rank{rank}_tob.npz"), *model.get_weights())
