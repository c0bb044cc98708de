"""The float64 check of a model's weight gradients against central finite differences, shared by
the tests of graphs (merges, attention, shared layers, custom layers)."""

import numpy as np


def assert_model_gradients(model, x, y, rng=None, samples=6, eps=1e-6, backward_passes=1, what=""):
    """Backward once (or `backward_passes` times in a row) and compare `samples` entries of each
    weight's gradient (every entry when `samples` is None) with (L(w + ε) − L(w − ε)) / 2ε.
    `x` as `model.prepare_inputs` returns it. Returns the analytic flat gradient."""
    params = model.flat_parameters()
    rng = np.random.default_rng(0) if rng is None else rng

    def loss():
        y_pred, mask = model.forward(x, True)
        return model.loss._loss_and_grad(y, y_pred, None, mask)

    for _ in range(backward_passes):
        model.backward(loss()[1])
    analytic = params.grads.copy()
    for a, b in params.segments:
        idx = np.arange(a, b) if samples is None else rng.choice(np.arange(a, b), size=min(samples, b - a),
                                                                  replace=False)
        for i in idx:
            old = params.values[i]
            params.values[i] = old + eps
            up = loss()[0]
            params.values[i] = old - eps
            down = loss()[0]
            params.values[i] = old
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - analytic[i]) <= 1e-6 + 1e-5 * abs(analytic[i]), \
                f"{what} entry {i}: numeric {numeric:.10g} vs analytic {analytic[i]:.10g}"
    return analytic
