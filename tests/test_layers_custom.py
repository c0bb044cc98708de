"""A layer written outside lstmfast with the layer contract alone (the worked example of
docs/architecture.md) builds, trains, saves its config and has exact gradients."""

import numpy as np

import lstmfast as lf
from gradcheck import assert_model_gradients
from lstmfast import layers as L


class Scale(L.Layer):
    """y = x ⊙ w: one learned factor per feature (w starts at 1)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # elementwise: a mask passes through

    def build(self, input_shape):
        self.w = self.add_weight((input_shape[-1],), "ones", "w")
        super().build(input_shape)

    def forward(self, x, mask=None, training=False):
        if training:
            self._x = x  # backward needs x
        return x * self.w.value  # y = x ⊙ w

    def backward(self, dy):
        x, self._x = self._x, None
        axes = tuple(range(dy.ndim - 1))
        np.copyto(self.w._ensure_grad(), (dy * x).sum(axis=axes))  # ∂L/∂w = Σ dy ⊙ x
        return dy * self.w.value if self.needs_input_gradient else None  # ∂L/∂x = dy ⊙ w


def _model():
    lf.utils.set_random_seed(0)
    return lf.Sequential([L.Input((6, 3)), L.LSTM(5, return_sequences=True), Scale(), L.LSTM(4), L.Dense(1)])


def test_a_custom_layer_trains_inside_a_model_and_its_gradient_matches_finite_differences():
    lf.config.set_floatx("float64")
    try:
        model = _model()
        model.compile("adam", "mse")
        rng = np.random.default_rng(1)
        x, y = rng.normal(size=(8, 6, 3)), rng.normal(size=(8, 1))
        model.layers[1].w.assign(rng.uniform(0.5, 1.5, 5))
        assert_model_gradients(model, model.prepare_inputs(x), y, samples=None)
        first = model.evaluate(x, y, verbose=0)
        model.fit(x, y, epochs=20, batch_size=8, verbose=0)
        assert model.evaluate(x, y, verbose=0) < first
    finally:
        lf.config.set_floatx("float32")


def test_a_custom_layer_first_in_a_model_owes_no_input_gradient():
    model = lf.Sequential([L.Input((4,)), Scale(), L.Dense(2)])
    model.build()
    assert [layer.needs_input_gradient for layer in model.layers] == [False, True]
