"""Post-training quantization: calibration (threshold search) and calibration tables.

* :mod:`hwsim.quant.calibrate` -- streamed observers, threshold methods
  (``minmax``, ``percentile``, ``kl``, ``mse``), scale / zero-point helpers and
  the weight quantizer.
* :mod:`hwsim.quant.tables` -- ncnn ``.table``, TensorRT calibration cache and
  NVDLA calibration JSON readers / writers.

See ``docs/calibration.md`` for the math, the determinism scheme and the formats.
"""
