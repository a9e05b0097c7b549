"""Train a small CNN on scikit-learn's bundled 8x8 digits with numpy, export it to ONNX.

Deterministic (fixed seed, float64 training, fixed data split) and fast (a few seconds):

    python examples/digits/train.py --out build/digits
    # -> digits_cnn.onnx, x_train.npy / y_train.npy (calibration), x_test.npy / y_test.npy

Network (NCHW, as exported): input [N, 1, 8, 8] (pixels / 16, in [0, 1])
  Conv 3x3 x8 (pad 1) -> Relu -> MaxPool 2x2 -> Conv 3x3 x16 (pad 1) -> BatchNormalization
  -> Relu -> MaxPool 2x2 -> Flatten -> Gemm 64->10 -> Softmax
The BatchNormalization carries fixed (non-trained) statistics, to exercise BN folding.

Split: scikit-learn's ``load_digits`` (1797 images), a seeded permutation, the first 1437 for
training (and calibration), the last 360 for testing.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

SEED = 0
N_TRAIN = 1437


def load_data(seed: int = SEED):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]  # N, 1, 8, 8 in [0, 1]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    x, y = x[perm], y[perm]
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


# ------------------------------------------------------------------ numpy layers (float64)
def _im2col(x, k, pad):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((n, c, k, k, h, w))
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i:i + h, j:j + w]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * h * w, c * k * k)


def _col2im(dcols, shape, k, pad):
    n, c, h, w = shape
    d = dcols.reshape(n, h, w, c, k, k).transpose(0, 3, 4, 5, 1, 2)
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + h, j:j + w] += d[:, :, i, j]
    return dxp[:, :, pad:pad + h, pad:pad + w]


def _conv(x, w, b):
    n, _, h, wd = x.shape
    o, _, k, _ = w.shape
    cols = _im2col(x, k, k // 2)
    y = cols @ w.reshape(o, -1).T + b
    return y.reshape(n, h, wd, o).transpose(0, 3, 1, 2), cols


def _conv_back(dy, cols, x_shape, w, need_dx=True):
    o, _, k, _ = w.shape
    d = dy.transpose(0, 2, 3, 1).reshape(-1, o)
    dw = (d.T @ cols).reshape(w.shape)
    db = d.sum(axis=0)
    dx = _col2im(d @ w.reshape(o, -1), x_shape, k, k // 2) if need_dx else None
    return dx, dw, db


def _pool(x):
    n, c, h, w = x.shape
    r = x.reshape(n, c, h // 2, 2, w // 2, 2)
    m = r.max(axis=(3, 5))
    mask = r == m[:, :, :, None, :, None]
    mask = mask / mask.sum(axis=(3, 5), keepdims=True)
    return m, mask


def _pool_back(dm, mask):
    n, c, h2, _, w2, _ = mask.shape
    return (mask * dm[:, :, :, None, :, None]).reshape(n, c, h2 * 2, w2 * 2)


class CNN:
    def __init__(self, seed: int = SEED):
        rng = np.random.default_rng(seed)
        self.p = {
            "w1": rng.normal(0, np.sqrt(2 / 9), (8, 1, 3, 3)), "b1": np.zeros(8),
            "w2": rng.normal(0, np.sqrt(2 / 72), (16, 8, 3, 3)), "b2": np.zeros(16),
            "w3": rng.normal(0, np.sqrt(1 / 64), (10, 64)), "b3": np.zeros(10),
        }
        # fixed BatchNormalization statistics (y = g (x - m) / sqrt(v + eps) + beta)
        self.bn = {"g": rng.uniform(0.8, 1.2, 16), "beta": rng.normal(0, 0.05, 16),
                   "m": rng.normal(0, 0.05, 16), "v": rng.uniform(0.8, 1.2, 16), "eps": 1e-5}

    def forward(self, x, cache=False):
        p, bn = self.p, self.bn
        c1, cols1 = _conv(x, p["w1"], p["b1"])
        r1 = np.maximum(c1, 0)
        p1, m1 = _pool(r1)
        c2, cols2 = _conv(p1, p["w2"], p["b2"])
        s = bn["g"] / np.sqrt(bn["v"] + bn["eps"])
        n2 = (c2 - bn["m"][:, None, None]) * s[:, None, None] + bn["beta"][:, None, None]
        r2 = np.maximum(n2, 0)
        p2, m2 = _pool(r2)
        f = p2.reshape(len(x), -1)
        logits = f @ p["w3"].T + p["b3"]
        if cache:
            return logits, (x, cols1, c1, p1, m1, cols2, n2, s, p2, m2, f)
        return logits

    def backward(self, dlogits, cache):
        x, cols1, c1, p1, m1, cols2, n2, s, p2, m2, f = cache
        p = self.p
        g = {"w3": dlogits.T @ f, "b3": dlogits.sum(0)}
        df = dlogits @ p["w3"]
        dr2 = _pool_back(df.reshape(p2.shape), m2) * (n2 > 0)
        dc2 = dr2 * s[:, None, None]
        dp1, g["w2"], g["b2"] = _conv_back(dc2, cols2, p1.shape, p["w2"])
        dr1 = _pool_back(dp1, m1) * (c1 > 0)
        _, g["w1"], g["b1"] = _conv_back(dr1, cols1, x.shape, p["w1"], need_dx=False)
        return g


def train(epochs: int = 8, lr: float = 0.05, batch: int = 32, seed: int = SEED, verbose=False):
    xtr, ytr, xte, yte = load_data(seed)
    net = CNN(seed)
    vel = {k: np.zeros_like(v) for k, v in net.p.items()}
    rng = np.random.default_rng(seed + 1)
    xtr64 = xtr.astype(np.float64)
    for ep in range(epochs):
        rate = lr if ep < epochs - 2 else lr / 5   # two slower epochs at the end
        order = rng.permutation(len(ytr))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            logits, cache = net.forward(xtr64[idx], cache=True)
            e = np.exp(logits - logits.max(1, keepdims=True))
            prob = e / e.sum(1, keepdims=True)
            prob[np.arange(len(idx)), ytr[idx]] -= 1
            grads = net.backward(prob / len(idx), cache)
            for k in net.p:
                vel[k] = 0.9 * vel[k] - rate * (grads[k] + 1e-4 * net.p[k])
                net.p[k] += vel[k]
        if verbose:
            acc = (net.forward(xte.astype(np.float64)).argmax(1) == yte).mean()
            print(f"epoch {ep + 1}: test top-1 {acc:.4f}")
    return net, (xtr, ytr, xte, yte)


def to_onnx(net: CNN):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    p, bn = net.p, net.bn
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    inits = [numpy_helper.from_array(f32(v), k) for k, v in
             [("w1", p["w1"]), ("b1", p["b1"]), ("w2", p["w2"]), ("b2", p["b2"]),
              ("bn_g", bn["g"]), ("bn_beta", bn["beta"]), ("bn_m", bn["m"]), ("bn_v", bn["v"]),
              ("w3", p["w3"]), ("b3", p["b3"])]]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["conv1"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv1"], ["relu1"]),
        helper.make_node("MaxPool", ["relu1"], ["pool1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool1", "w2", "b2"], ["conv2"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv2", "bn_g", "bn_beta", "bn_m", "bn_v"],
                         ["bn2"], epsilon=bn["eps"]),
        helper.make_node("Relu", ["bn2"], ["relu2"]),
        helper.make_node("MaxPool", ["relu2"], ["pool2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool2"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w3", "b3"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"], axis=1),
    ]
    g = helper.make_graph(nodes, "digits_cnn",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                         ["N", 1, 8, 8])],
                          [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 10])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)],
                          producer_name="hwsim examples/digits/train.py")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def build(out_dir: str | None = None, epochs: int = 8, verbose: bool = False):
    """Train, export; write the artefacts to ``out_dir`` when given. Returns
    ``(onnx_model, (x_train, y_train, x_test, y_test), float_top1_on_test)``."""
    net, data = train(epochs=epochs, verbose=verbose)
    model = to_onnx(net)
    xte, yte = data[2], data[3]
    acc = float((net.forward(xte.astype(np.float64)).argmax(1) == yte).mean())
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        import onnx
        onnx.save(model, os.path.join(out_dir, "digits_cnn.onnx"))
        for name, arr in zip(("x_train", "y_train", "x_test", "y_test"), data):
            np.save(os.path.join(out_dir, f"{name}.npy"), arr)
    return model, data, acc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/digits", help="output folder (build/digits)")
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args(argv)
    _, _, acc = build(args.out, args.epochs, verbose=True)
    print(f"float top-1 on the 360 test digits: {acc:.4f}; wrote {args.out}/digits_cnn.onnx, "
          f"x_train.npy, y_train.npy, x_test.npy, y_test.npy")


if __name__ == "__main__":
    main()
