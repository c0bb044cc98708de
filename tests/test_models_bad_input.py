"""Bad input to every public entry point gives a ValueError or TypeError that says what was
expected and what came."""

import numpy as np
import pytest

import lstmfast as lf
from lstmfast import layers as L


def _model(loss="mse", units=1, act=None, metrics=None):
    m = lf.Sequential([L.Input((30, 1)), L.LSTM(4), L.Dense(units, activation=act)])
    m.compile("adam", loss, metrics=metrics)
    return m


X = np.random.default_rng(0).random((8, 30, 1)).astype(np.float32)


@pytest.mark.parametrize("x, pattern", [
    (np.zeros((8, 30, 2), np.float32), r"expected shape=\(None, 30, 1\), found shape=\(8, 30, 2\)"),
    (np.zeros((8, 20, 1), np.float32), r"expected shape=\(None, 30, 1\), found shape=\(8, 20, 1\)"),
    (np.zeros((8, 30), np.float32), r"found shape=\(8, 30\)\. Add a trailing feature axis"),
])
def test_input_shape_that_does_not_fit_the_model_is_named(x, pattern):
    m = _model()
    for call in (lambda: m.predict(x, verbose=0), lambda: m.fit(x, np.zeros((8, 1)), verbose=0),
                 lambda: m.evaluate(x, np.zeros((8, 1)), verbose=0), lambda: m.train_on_batch(x, np.zeros((8, 1)))):
        with pytest.raises(ValueError, match=pattern):
            call()


def test_nan_or_inf_in_inputs_is_refused_with_its_position():
    x = X.copy()
    x[3, 7, 0] = np.nan
    with pytest.raises(ValueError, match=r"`x` contains NaN or infinite values \(first at index \(3, 7, 0\)\)"):
        _model().fit(x, np.zeros((8, 1)), verbose=0)
    x[3, 7, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        _model().predict(x, verbose=0)
    with pytest.raises(ValueError, match="`y_true` contains NaN"):
        _model().fit(X, np.full((8, 1), np.nan), verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        _model().fit(X, np.zeros((8, 1)), validation_data=(x, np.zeros((8, 1))), verbose=0)


def test_targets_with_the_wrong_shape_or_count_are_named():
    with pytest.raises(ValueError, match="'x' sizes: 8 'y' sizes: 7"):
        _model().fit(X, np.zeros((7, 1)), verbose=0)
    with pytest.raises(ValueError, match=r"y_true.shape=\(8, 3\), y_pred.shape=\(8, 1\)"):
        _model().fit(X, np.zeros((8, 3)), verbose=0)
    with pytest.raises(ValueError, match="one-hot.*sparse_categorical_crossentropy"):
        _model("categorical_crossentropy", 3, "softmax").fit(X, np.zeros(8, int), verbose=0)


def test_labels_out_of_range_are_named():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\] for 3 classes. Received label 3"):
        _model("sparse_categorical_crossentropy", 3, "softmax").fit(X, np.array([0, 1, 2, 3, 0, 1, 2, 0]), verbose=0)
    with pytest.raises(ValueError, match="labels must be in \\[0, 2\\].*Received label -1"):
        _model("sparse_categorical_crossentropy", 3, "softmax").evaluate(X, -np.ones(8, int), verbose=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 1\]"):
        _model("binary_crossentropy", 1, "sigmoid").fit(X, np.full((8, 1), 2.0), verbose=0)
    with pytest.raises(ValueError, match="labels must be integers"):
        _model("sparse_categorical_crossentropy", 3, "softmax").fit(X, np.full(8, 0.5), verbose=0)
    with pytest.raises(ValueError, match=r"input_dim=10, so ids must lie in \[0, 9\]. Received id 10"):
        m = lf.Sequential([L.Input((4,)), L.Embedding(10, 2), L.LSTM(2)])
        m.predict(np.array([[1, 2, 3, 10]]), verbose=0)
    with pytest.raises(ValueError, match="integer token ids"):
        lf.Sequential([L.Input((4,)), L.Embedding(10, 2), L.LSTM(2)]).predict(np.full((1, 4), 1.5), verbose=0)
    with pytest.raises(ValueError, match="out of range for num_classes=3"):
        lf.utils.to_categorical([0, 3], 3)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown loss: 'msee'.*'mse'"):
        _model(loss="msee")
    with pytest.raises(ValueError, match=r"Could not interpret optimizer identifier: 'adamw'.*'adam'"):
        _model().compile(optimizer="adamw", loss="mse")
    with pytest.raises(ValueError, match=r"Could not interpret activation function identifier: 'relu6x'.*'relu'"):
        L.Dense(2, activation="relu6x")
    with pytest.raises(ValueError, match=r"Unknown metric: 'acuracy'"):
        _model(metrics=["acuracy"])
    with pytest.raises(ValueError, match="Could not interpret initializer identifier: 'glorot'"):
        L.Dense(2, kernel_initializer="glorot")
    with pytest.raises(ValueError, match=r"LSTM argument `activation` must be one of \['tanh', 'relu', 'sigmoid', 'linear'\]"):
        L.LSTM(3, activation="softmax")
    with pytest.raises(ValueError, match="recurrent_activation"):
        L.LSTM(3, recurrent_activation="tanh")
    with pytest.raises(ValueError, match="Unknown layer type 'GRU'"):
        L.deserialize({"class_name": "GRU", "config": {}})
    with pytest.raises(ValueError, match="Invalid merge mode"):
        L.Bidirectional(L.LSTM(2), merge_mode="max")


@pytest.mark.parametrize("factory, pattern", [
    (lambda: L.LSTM(0), "`units` of LSTM must be a positive integer. Received: units=0"),
    (lambda: L.LSTM(2.5), "units=2.5"),
    (lambda: L.Dense(-1), "`units` of Dense must be a positive integer"),
    (lambda: L.Embedding(0, 3), "`input_dim` of Embedding"),
    (lambda: L.RepeatVector(0), "`n` of RepeatVector"),
    (lambda: L.LSTM(2, dropout=1.5), r"`dropout` must be a float in \[0, 1\]"),
    (lambda: L.LSTM(2, recurrent_dropout=1.0), r"`recurrent_dropout` must be in \[0, 1\)"),
    (lambda: L.Dropout(-0.1), "`rate`"),
    (lambda: L.Dense(2, kernel_regularizer="l3"), "Could not interpret regularizer identifier: 'l3'"),
    (lambda: L.Dense(2, kernel_constraint="max"), "Could not interpret constraint identifier: 'max'"),
    (lambda: L.TimeDistributed("dense"), "Layer` instance"),
    (lambda: L.Bidirectional(L.Dense(2)), "LSTM` instance"),
    (lambda: lf.optimizers.Adam(learning_rate=-1), "`learning_rate` must be a non-negative"),
    (lambda: lf.optimizers.Adam(clipnorm=1, clipvalue=1), "Only one of `clipnorm`"),
    (lambda: lf.optimizers.Adam(lr=0.1), "`lr` is no longer supported.*learning_rate"),
    (lambda: lf.losses.MeanSquaredError(reduction="avg"), "`reduction`"),
    (lambda: lf.utils.set_random_seed(-1), "non-negative integer"),
    (lambda: lf.config.set_floatx("float16"), "floatx"),
])
def test_bad_constructor_arguments_name_the_argument(factory, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        factory()


def test_unknown_keyword_arguments_are_refused():
    with pytest.raises(TypeError, match="Unrecognized keyword arguments passed to Dense: {'unit': 3}"):
        L.Dense(2, unit=3)
    with pytest.raises(TypeError, match="Unrecognized keyword arguments passed to Adam"):
        lf.optimizers.Adam(momentum=0.9)


def test_fit_argument_errors():
    m = _model()
    y = np.zeros((8, 1))
    for kwargs, pattern in [
        (dict(batch_size=0), "`batch_size` must be a positive integer"),
        (dict(epochs=-1), "`epochs` must be a non-negative integer"),
        (dict(validation_split=1.5), r"`validation_split` must be in \[0, 1\)"),
        (dict(verbose=3), "`verbose` must be 'auto', 0, 1 or 2"),
        (dict(validation_data=X), "`validation_data` must be a tuple"),
        (dict(sample_weight=np.ones(5)), "`sample_weight` has 5 entries but there are 8 samples"),
        (dict(steps_per_epoch=3), "steps_per_epoch"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            m.fit(X, y, **{**dict(verbose=0), **kwargs})
    with pytest.raises(ValueError, match="leaves no training or no validation samples out of 1"):
        m.fit(X[:1], y[:1], validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match="targets"):
        m.fit(X, verbose=0)
    with pytest.raises(TypeError, match="numeric"):
        m.fit(np.array([["a"] * 30] * 8), y, verbose=0)
    with pytest.raises(TypeError, match="ragged"):
        m.predict(np.array([np.zeros(3), np.zeros(4)], dtype=object), verbose=0)


def test_using_a_model_before_compile_or_with_the_wrong_pieces():
    m = lf.Sequential([L.Input((30, 1)), L.LSTM(2), L.Dense(1)])
    with pytest.raises(RuntimeError, match="compile"):
        m.fit(X, np.zeros((8, 1)), verbose=0)
    with pytest.raises(RuntimeError, match="compile"):
        m.evaluate(X, np.zeros((8, 1)), verbose=0)
    assert m.predict(X, verbose=0).shape == (8, 1)  # predict needs no compile
    with pytest.raises(TypeError, match="Only instances of `lstmfast.layers.Layer`"):
        m.add("dense")
    with pytest.raises(ValueError, match="unique names"):
        m.add(L.Dense(1, name=m.layers[-1].name))
    with pytest.raises(ValueError, match="first element"):
        m.add(L.Input((3,)))
    with pytest.raises(ValueError, match="return_state=True"):
        lf.Sequential([L.Input((3, 2)), L.LSTM(2, return_state=True)])
    with pytest.raises(ValueError, match="expected 3 weights, but received 1"):
        m.layers[0].set_weights([np.zeros((1, 8))])
    with pytest.raises(ValueError, match=r"weight shape \(1, 8\) is not compatible with provided weight shape \(2, 8\)"):
        m.layers[0].set_weights([np.zeros((2, 8)), np.zeros((2, 8)), np.zeros(8)])
    with pytest.raises(ValueError, match="weight list of length 1, but the model was expecting 5"):
        m.set_weights([np.zeros(1)])
    # a layer called on an Input builds a functional graph; nesting a Model in one is refused
    inp = L.Input((3,))
    model = lf.Model(inp, L.Dense(2)(inp))
    with pytest.raises(TypeError, match="nesting models"):
        model(L.Input((3,)))


def test_mixing_float32_and_float64_layers_is_refused_at_compile_time():
    m = lf.Sequential([L.Input((5, 2)), L.LSTM(2, dtype="float64"), L.Dense(1)])
    m.compile("adam", "mse")
    with pytest.raises(ValueError, match="share one dtype"):
        m.fit(np.zeros((2, 5, 2)), np.zeros((2, 1)), verbose=0)


def test_masked_input_to_a_layer_without_mask_support_warns_like_keras():
    with pytest.warns(UserWarning, match="does not support masking"):
        lf.Sequential([L.Input((5,)), L.Embedding(9, 2, mask_zero=True), L.LSTM(2, return_sequences=True),
                       L.Flatten(), L.Dense(1)])


def test_empty_data_and_unknown_input_dtypes_are_refused_with_a_reason():
    model = lf.Sequential([lf.Input((3, 2)), L.LSTM(2), L.Dense(1)])
    model.compile("adam", "mse")
    x0, y0 = np.zeros((0, 3, 2), np.float32), np.zeros((0, 1), np.float32)
    x, y = np.ones((4, 3, 2), np.float32), np.ones((4, 1), np.float32)
    for call in (lambda: model.evaluate(x0, y0, verbose=0), lambda: model.test_on_batch(x0, y0),
                 lambda: model.fit(x, y, validation_data=(x0, y0), verbose=0)):
        with pytest.raises(ValueError, match="no data"):
            call()
    with pytest.raises(ValueError, match="Invalid dtype for Input: 'nope'"):
        lf.Input((3,), dtype="nope")
    with pytest.raises(ValueError, match="epsilon"):
        lf.optimizers.Adam(epsilon=0.0)
