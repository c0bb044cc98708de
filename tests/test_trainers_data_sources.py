"""fit, evaluate and predict on data that is not arrays: Python generators, iterables of batches
and PyDatasets (read ahead in a background thread), steps_per_epoch and validation_steps, and
timeseries_dataset_from_array."""

import threading
import warnings

import numpy as np
import pytest

import lstmfast as lf
from lstmfast import layers as L


def _model(seed=0):
    lf.utils.set_random_seed(seed)
    m = lf.Sequential([L.Input((6, 2)), L.LSTM(5), L.Dense(1)])
    m.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return m


def _data(n=40, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6, 2)).astype(np.float32)
    return x, x.sum(axis=(1, 2))[:, None] / 6


def _list(x, y, b=8):
    return [(x[i:i + b], y[i:i + b]) for i in range(0, len(x), b)]


class Loader:
    """An iterable of batches that starts afresh at each pass, as a torch DataLoader does."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def _batches(x, y, b=8):
    return Loader(_list(x, y, b))


class Batches(lf.utils.PyDataset):
    def __init__(self, x, y, b=8):
        super().__init__(max_queue_size=3)
        self.x, self.y, self.b, self.epochs_ended = x, y, b, 0

    def __len__(self):
        return -(-len(self.x) // self.b)

    def __getitem__(self, i):
        return self.x[i * self.b:(i + 1) * self.b], self.y[i * self.b:(i + 1) * self.b]

    def on_epoch_end(self):
        self.epochs_ended += 1


@pytest.mark.parametrize("kind", ["generator", "iterable", "pydataset"])
def test_a_source_of_the_same_batches_trains_bit_for_bit_as_the_arrays(kind):
    x, y = _data()
    ref = _model()
    h_ref = ref.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    m = _model()
    if kind == "generator":
        def gen():
            while True:
                yield from _list(x, y)
        h = m.fit(gen(), steps_per_epoch=5, epochs=3, verbose=0).history
    elif kind == "iterable":
        h = m.fit(_batches(x, y), epochs=3, verbose=0).history
    else:
        ds = Batches(x, y)
        h = m.fit(ds, epochs=3, shuffle=False, verbose=0).history
        assert ds.epochs_ended >= 3
    assert h == h_ref
    for a, b in zip(m.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m.predict(Batches(x, y), verbose=0), ref.predict(x, batch_size=8, verbose=0))
    assert m.evaluate(_batches(x, y), verbose=0) == ref.evaluate(x, y, batch_size=8, verbose=0)


def test_fit_visits_a_pydatasets_batches_in_a_new_order_every_epoch_unless_shuffle_is_false():
    # Keras's PyDatasetAdapter shuffles the batch order when fit's shuffle is true (its default).
    x, y = _data()

    class Logged(Batches):
        def __init__(self, *a):
            super().__init__(*a)
            self.seen = []

        def __getitem__(self, i):
            self.seen.append(i)
            return super().__getitem__(i)

    lf.utils.set_random_seed(4)
    ds = Logged(x, y)
    _model().fit(ds, epochs=4, verbose=0)
    n = len(ds)
    epochs = [ds.seen[k * n:(k + 1) * n] for k in range(4)]
    assert all(sorted(e) == list(range(n)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1
    ds = Logged(x, y)
    _model().fit(ds, epochs=2, shuffle=False, verbose=0)
    assert ds.seen[:2 * n] == list(range(n)) * 2


def test_validation_from_a_generator_with_validation_steps_and_no_thread_left_behind():
    x, y = _data()
    vx, vy = _data(16, seed=2)
    m, ref = _model(), _model()

    def val():
        while True:
            yield from _list(vx, vy)
    h = m.fit(_batches(x, y), validation_data=val(), validation_steps=2, epochs=2, verbose=0).history
    h_ref = ref.fit(x, y, batch_size=8, validation_data=(vx, vy), epochs=2, shuffle=False, verbose=0).history
    assert h == h_ref
    assert not [t for t in threading.enumerate() if t.name == "lstmfast-data"]


def test_a_generator_that_runs_out_ends_training_with_keras_warning():
    x, y = _data()
    m = _model()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit(iter(_list(x, y)), epochs=3, verbose=0)
    assert len(h.history["loss"]) == 1


def test_errors_in_the_source_reach_the_caller_with_their_message():
    x, y = _data()
    m = _model()

    def broken():
        yield x[:8], y[:8]
        raise OSError("disk gone")
    with pytest.raises(OSError, match="disk gone"):
        m.fit(broken(), steps_per_epoch=3, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"expected shape=\(None, 6, 2\), found shape=\(8, 5, 2\)"):
        m.fit(Loader([(x[:8, :5], y[:8])]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="without targets"):
        m.fit(Loader([x[:8]]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="must not be given"):
        m.fit(_batches(x, y), y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        m.fit(x, y, steps_per_epoch=2, verbose=0)
    with pytest.raises(ValueError, match="no data to evaluate"):
        m.evaluate(iter([]), verbose=0)


def test_timeseries_dataset_from_array_cuts_windows_as_keras_describes():
    data = np.arange(100, dtype=np.float32)[:, None]
    ds = lf.utils.timeseries_dataset_from_array(data[:-3], data[3:, 0], sequence_length=10, sequence_stride=2,
                                               sampling_rate=2, batch_size=8)
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    x, y = np.concatenate(xs), np.concatenate(ys)
    starts = np.arange(0, 97 - 9 * 2, 2)
    assert len(x) == len(starts) and len(ds) == -(-len(starts) // 8)
    np.testing.assert_array_equal(x[:, :, 0], starts[:, None] + np.arange(0, 20, 2))
    np.testing.assert_array_equal(y, starts + 3)  # targets[i] goes with the window starting at i
    shuffled = lf.preprocessing.timeseries_dataset_from_array(data, None, 5, batch_size=None, shuffle=True, seed=3)
    assert len(shuffled) == 1 and sorted(shuffled[0][:, 0, 0]) == list(range(96))
    m = lf.Sequential([L.Input((10, 1)), L.LSTM(3), L.Dense(1)])
    m.compile("adam", "mse")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.fit(ds, epochs=1, verbose=0)
    assert m.predict(ds, verbose=0).shape == (len(starts), 1)
    with pytest.raises(ValueError, match="cannot hold one window"):
        lf.utils.timeseries_dataset_from_array(data[:5], None, 10)


def test_a_timeseries_dataset_answers_the_tf_data_idioms_of_kerass_examples():
    # Keras's weather example: `for batch in ds.take(1)`, `inputs.numpy().shape`,
    # `for x, y in ds_val.take(5): model.predict(x)`, `x[0][:, 1].numpy()`.
    series = np.arange(60, dtype=np.float32).reshape(30, 2)
    ds = lf.utils.timeseries_dataset_from_array(series, series[:, 0], sequence_length=4, batch_size=8)
    assert len(ds) == 4  # 27 windows
    first = list(ds.take(1))
    assert len(first) == 1
    x, y = first[0]
    assert isinstance(x, lf.utils.BatchArray) and type(x.numpy()) is np.ndarray
    np.testing.assert_array_equal(x.numpy()[1], series[1:5])
    np.testing.assert_array_equal(x[0][:, 1].numpy(), series[0:4, 1])
    assert [b[0].shape[0] for b in ds] == [8, 8, 8, 3]
    assert len(list(ds.take(10))) == 4 and len(list(ds.take(-1))) == 4 and len(ds.take(2).take(5)) == 2
    plain = list(ds.as_numpy_iterator())
    assert all(type(a) is np.ndarray for batch in plain for a in batch)
    np.testing.assert_array_equal(plain[3][1], series[24:27, 0])
    m = lf.Sequential([L.Input((4, 2)), L.LSTM(3), L.Dense(1)])
    m.compile(optimizer="adam", loss="mse")
    history = m.fit(ds.take(2), epochs=2, verbose=0)  # two batches a step each epoch
    assert len(history.history["loss"]) == 2
    assert m.predict(ds.take(1), verbose=0).shape == (8, 1)
    with pytest.raises(TypeError, match="count"):
        ds.take(1.5)
