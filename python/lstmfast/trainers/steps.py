"""The loss at a model's output and the backward pass from it, shared by the one-process training
step (trainers.trainer) and the data-parallel one (trainers.distributed)."""

__all__ = ["loss_and_output_gradient", "backward_from_output", "apply_gradients"]


def loss_and_output_gradient(model, y, y_pred, sample_weight, mask):
    """(L, ∂L/∂ŷ, None), or, where the output is a softmax made by one layer and the loss is a
    crossentropy on probabilities, (L, ∂L/∂z, that layer): the gradient past the softmax in one
    step (q − onehot where nothing is clipped) instead of through its Jacobian."""
    layer = model._softmax_output_layer() if getattr(model.loss, "fuses_softmax", False) else None
    loss, dy = model.loss._loss_and_grad(y, y_pred, sample_weight, mask, softmax_logits=layer is not None)
    return loss, dy, layer


def backward_from_output(model, dy, logits_layer=None):
    """model.backward(dy); with `logits_layer`, dy is ∂L/∂z of that softmax layer, which then
    skips its softmax backward (layers.dense._activation_backward)."""
    if logits_layer is None:
        return model.backward(dy)
    logits_layer._gradient_is_for_logits = True
    try:
        return model.backward(dy)
    finally:
        logits_layer.__dict__.pop("_gradient_is_for_logits", None)


def apply_gradients(model, part=None, total=None, gather=None):
    """w ← optimizer(w, ∂L/∂w + ∂R/∂w) on the flat buffer, then w ← constraint(w) (Keras applies
    constraints after the step). ∂L/∂w is in the buffer's gradients already. Data-parallel, with
    the update shared out (trainers.distributed): `part` and `total` go to `Optimizer.apply`,
    and `gather(values)` brings every rank's updated part before the constraints."""
    for v in model._weight_regularized:
        v.grad += v.regularizer.gradient(v.value)  # ∂R/∂w
    params = model._params
    model.optimizer.apply(params.values, params.grads, part, total)
    if gather is not None:
        gather(params.values)
    for v in model._constrained:
        v.value[...] = v.constraint(v.value)
