"""Float vs int8 top-1 of the digits CNN for every calibration method (the table in
docs/quantization.md is this script's output).

    python examples/digits/accuracy.py [--model examples/digits/digits_cnn.onnx] [--tflite]

Calibration: the 1437 training digits. Test: the 360 held-out digits. The int8 model is run by
hwsim (``hwsim.load(...).run``); with ``--tflite`` TFLite's reference kernels run it too and
the script checks that both give the same integers on every test digit.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def int8_top1(result, x_test, y_test, tflite: bool = False):
    """(top-1, #digits where TFLite == hwsim or None, int8 outputs dequantized)."""
    import hwsim
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.tflite")
        result.write_tflite(path)
        net = hwsim.load(path)
        xq = result.quantize_input(x_test)
        outs = np.concatenate([net.run(xq[i:i + 1]).outputs[0] for i in range(len(xq))])
        agree = None
        if tflite:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
            it = Interpreter(model_path=path,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
            it.allocate_tensors()
            i_in, i_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
            ref = []
            for i in range(len(xq)):
                it.set_tensor(i_in, xq[i:i + 1])
                it.invoke()
                ref.append(it.get_tensor(i_out).copy())
            agree = int(np.sum(np.all(np.concatenate(ref) == outs, axis=1)))
    from hwsim.quant.quantize import dequantize
    deq = dequantize(result.graph.tensors[result.graph.outputs[0]], outs)
    return float((outs.argmax(1) == y_test).mean()), agree, deq


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(HERE, "digits_cnn.onnx"))
    ap.add_argument("--tflite", action="store_true", help="also run TFLite's reference kernels")
    args = ap.parse_args(argv)
    sys.path.insert(0, HERE)
    from train import load_data

    from hwsim.frontends.onnx_reader import read_onnx
    from hwsim.quant.float_exec import FloatExecutor
    from hwsim.quant.quantize import METHODS, quantize
    x_train, _, x_test, y_test = load_data()
    g = read_onnx(args.model)
    f_top1 = float((FloatExecutor(g, batch_invariant=False).run(x_test)[0].argmax(1)
                    == y_test).mean())
    f_out = FloatExecutor(g, batch_invariant=False).run(x_test)[0]
    f_pred = f_out.argmax(1)
    from hwsim.quant.float_exec import sqnr_db
    configs = [(m, w, {}) for m in METHODS for w in ("maxabs", "mse")]
    configs += [(m, "maxabs", {"weight_bits": 4}) for m in METHODS]
    configs += [(m, "mse", {"weight_bits": 4}) for m in METHODS]
    configs += [(m, "maxabs", {"activation_bits": 4}) for m in METHODS]
    # yolo2_light: 4-bit weights and activations, the first and last MAC layers at 8 bits
    configs += [(m, "maxabs", {"weight_bits": 4, "activation_bits": 4,
                               "first_last_weight_bits": 8}) for m in METHODS]
    rows = []
    for method, weights, extra in configs:
        q = quantize(g, x_train, method, weights=weights, **extra)
        top1, agree, deq = int8_top1(q, x_test, y_test, args.tflite)
        bits = f"w{extra.get('weight_bits', 8)}a{extra.get('activation_bits', 8)}" + (
            f", first / last {extra['first_last_weight_bits']}"
            if "first_last_weight_bits" in extra else "")
        rows.append((bits, method, weights, top1, agree, int(np.sum(deq.argmax(1) != f_pred)),
                     sqnr_db(f_out, deq), sorted({a.method for a in q.activations.values()
                                                  if a.method != "fixed"})))
    n = len(y_test)
    print(f"float top-1: {f_top1 * 100:.2f}% ({round(f_top1 * n)}/{n})\n")
    print("| bits | activations | weights | int8 top-1 | argmax != float | output SQNR (dB) |"
          + (" TFLite == hwsim |" if args.tflite else "") + " ranges from |")
    print("|---|---|---|---|---|---|" + ("---|" if args.tflite else "") + "---|")
    for bits, method, weights, top1, agree, differ, sq, chosen in rows:
        print(f"| {bits} | {method} | {weights} | {top1 * 100:.2f}% ({round(top1 * n)}) | "
              f"{differ} | {sq:.1f} |" + (f" {agree}/{n} |" if args.tflite else "")
              + f" {', '.join(chosen)} |")


if __name__ == "__main__":
    main()
