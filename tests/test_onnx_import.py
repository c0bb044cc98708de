"""ONNX import (`load_model("x.onnx")`): lstmfast's own exports come back exactly, PyTorch's
`nn.LSTM` exports (several layers, bidirectional) predict as torch does, and what cannot be mapped
is refused with the node and the reason."""

import warnings

import numpy as np
import pytest

import lstmfast as lf

onnx = pytest.importorskip("onnx")
L = lf.layers


def exported(tmp_path, model):
    path = str(tmp_path / "m.onnx")
    model.export(path, verbose=False)
    return path


@pytest.mark.parametrize("name", ["timeseries", "translation", "sentiment", "bidirectional"])
def test_lstmfast_exports_come_back_the_same(tmp_path, name):
    rng = np.random.default_rng(0)
    model, x = {
        "timeseries": (lambda: (lf.Sequential([lf.Input((30, 1)), L.LSTM(50, activation="relu"), L.Dense(1)]),
                                rng.standard_normal((5, 30, 1)).astype(np.float32))),
        "translation": (lambda: (lf.Sequential([lf.Input((20, 60)), L.LSTM(32), L.RepeatVector(20),
                                                L.LSTM(32, return_sequences=True), L.Dense(60, activation="softmax")]),
                                 rng.standard_normal((5, 20, 60)).astype(np.float32))),
        "sentiment": (lambda: (lf.Sequential([lf.Input((50,), dtype="int32"), L.Embedding(300, 16), L.LSTM(16),
                                              L.Dense(1, activation="sigmoid")]),
                               rng.integers(0, 300, (5, 50)).astype(np.int32))),
        "bidirectional": (lambda: (lf.Sequential([lf.Input((10, 4)), L.Bidirectional(L.LSTM(
            8, return_sequences=True, recurrent_activation="hard_sigmoid")), L.Bidirectional(L.LSTM(6)), L.Dense(3)]),
            rng.standard_normal((5, 10, 4)).astype(np.float32))),
    }[name]()
    back = lf.models.load_model(exported(tmp_path, model))
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert back.count_params() == model.count_params()


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one direction", "bidirectional"])
def test_pytorch_lstm_exports_import_and_predict_as_torch(tmp_path, bidirectional):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(4, 8, num_layers=2, batch_first=True, bidirectional=bidirectional)
            self.head = torch.nn.Linear(16 if bidirectional else 8, 3)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(3, 7, 4)
    path = str(tmp_path / "t.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), path, dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch", 1: "time"}})
    model = lf.models.load_model(path)
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(model.predict(x.numpy(), verbose=0), want, rtol=0, atol=1e-5)
    kinds = [type(layer).__name__ for layer in model.layers if type(layer).__name__ != "InputLayer"]
    assert kinds == (["Bidirectional"] * 2 + ["Dense"] if bidirectional else ["LSTM", "LSTM", "Dense"])


def lstm_graph(tmp_path, **attrs):
    """A one-node ONNX LSTM graph (time-first input) with the given attributes."""
    h, d = onnx.helper, 3
    W = onnx.numpy_helper.from_array(np.zeros((1, 8, d), np.float32), "W")
    R = onnx.numpy_helper.from_array(np.zeros((1, 8, 2), np.float32), "R")
    nodes = [h.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             h.make_node("LSTM", ["xt", "W", "R"], ["y", "y_h"], hidden_size=2, **attrs),
             h.make_node("Squeeze", ["y_h", "axes"], ["out"])]
    axes = onnx.numpy_helper.from_array(np.array([0], np.int64), "axes")
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["b", 5, d])],
                         [h.make_tensor_value_info("out", onnx.TensorProto.FLOAT, ["b", 2])], [W, R, axes])
    path = str(tmp_path / "g.onnx")
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), path)
    return path


def test_a_minimal_lstm_graph_imports(tmp_path):
    model = lf.models.load_model(lstm_graph(tmp_path))
    assert model.predict(np.ones((2, 5, 3), np.float32), verbose=0).shape == (2, 2)


@pytest.mark.parametrize("attrs, message", [
    (dict(clip=1.0), "clip"),
    (dict(direction="reverse"), "reverse-only"),
    (dict(activations=["Sigmoid", "Relu", "Tanh"]), "activations"),
    (dict(activations=["HardSigmoid", "Tanh", "Tanh"], activation_alpha=[0.2], activation_beta=[0.5]),
     "not Keras's hard_sigmoid"),
])
def test_what_has_no_lstmfast_form_is_refused_with_the_node(tmp_path, attrs, message):
    with pytest.raises(ValueError, match=f"node .*LSTM.*{message}"):
        lf.models.load_model(lstm_graph(tmp_path, **attrs))


def test_an_unknown_op_and_a_broken_file_are_refused(tmp_path):
    h = onnx.helper
    graph = h.make_graph([h.make_node("Erf", ["x"], ["y"])], "g",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["b", 3])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["b", 3])])
    path = tmp_path / "erf.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    with pytest.raises(ValueError, match=r"node Erf \(Erf\): no lstmfast form"):
        lf.models.load_model(str(path))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all")
    with pytest.raises(ValueError, match="is not a valid ONNX model"):
        lf.models.load_model(str(broken))
