"""Keras 3 on its torch backend, as the reference the parity tests compare lstmfast with.

`import_keras()` must run before anything else imports keras: the backend is chosen at first
import. Tests that need Keras skip (with the reason) when it is not installed.

Known limit of the reference: Keras 3's torch backend computes `ops.matmul` of two float64
tensors in float32 (its dtype promotion does not recognise torch dtypes), so Keras models in
float64 are only float32-accurate; parity is therefore checked in float32.
"""

import os

import pytest


def import_keras():
    os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except Exception as e:  # keras or torch missing, or a broken install
        pytest.skip(f"Keras 3 with the torch backend is not available ({type(e).__name__}: {e})",
                    allow_module_level=True)
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras was already imported with the {keras.backend.backend()!r} backend",
                    allow_module_level=True)
    import torch

    # One thread: the tiny reference models run faster that way, and results do not depend on
    # how torch splits its reductions.
    torch.set_num_threads(1)
    return keras


def build_pair(keras, keras_layers, lf_layers, input_shape, int_input=False):
    """A Keras model and an lstmfast model of the same layers, with the lstmfast weights copied
    into Keras (which also checks that both use the same weight order and shapes)."""
    import lstmfast as lf

    km = keras.Sequential([keras.Input(input_shape, dtype="int32" if int_input else None)] + keras_layers)
    lm = lf.Sequential([lf.layers.Input(input_shape)] + lf_layers)
    assert [tuple(w.shape) for w in km.weights] == [w.shape for w in lm.weights]
    km.set_weights(lm.get_weights())
    return km, lm


def assert_trains_like_keras(lf_model, keras_model, x, y, loss="mse", metrics=None, batch_size=8, epochs=2,
                             weights=True, predict_rtol=1e-5, predict_atol=1e-6):
    """The same weights give the same predictions; compiled alike (Adam), `epochs` epochs of
    `fit` give the same history (every key, 1e-4 relative) and, with `weights`, the same weights
    (5e-5 absolute)."""
    import numpy as np

    np.testing.assert_allclose(lf_model.predict(x, verbose=0), keras_model.predict(x, verbose=0),
                               rtol=predict_rtol, atol=predict_atol)
    for m in (lf_model, keras_model):
        m.compile(optimizer="adam", loss=loss, metrics=metrics)
    fit = dict(batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    hl, hk = lf_model.fit(x, y, **fit).history, keras_model.fit(x, y, **fit).history
    for key in hk:
        np.testing.assert_allclose(hl[key], hk[key], rtol=1e-4, atol=1e-6, err_msg=key)
    if weights:
        for a, b in zip(lf_model.get_weights(), keras_model.get_weights()):
            np.testing.assert_allclose(a, b, atol=5e-5)


def functional_pair(keras, graph, seed=0):
    """lstmfast and Keras functional models from one `graph(layers_module, Input) -> (inputs,
    outputs)`, with the lstmfast weights (made after `set_random_seed(seed)`) copied into Keras."""
    import lstmfast as lf

    lf.utils.set_random_seed(seed)
    lin, lout = graph(lf.layers, lf.Input)
    kin, kout = graph(keras.layers, keras.Input)
    lm, km = lf.Model(lin, lout), keras.Model(kin, kout)
    assert [tuple(w.shape) for w in km.weights] == [w.shape for w in lm.weights]
    km.set_weights(lm.get_weights())
    return lm, km
