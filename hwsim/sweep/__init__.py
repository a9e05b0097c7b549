"""hwsim.sweep: design-space sweeps over (model, accelerator config, input), on Dask or serially.

    from hwsim.sweep import load_spec, run_sweep
    spec = load_spec("sweep.yaml")                 # validated; InputError naming the key
    outcome = run_sweep(spec, "build/sweep", workers=2)   # or scheduler="tcp://host:8786"

A thin layer over the public API: each job maps a model onto a config with
``hwsim.hw.map_network(..., legalize="approx")``, runs one input through the hardware model
and the engine, and returns one row. Nothing in the engine knows about Dask; Dask is imported
only when a cluster is used (``--workers 1`` runs in this process).

Modules (data flows down the list):

* :mod:`.spec` -- the SPEC.yaml reader: models, configs, grid overrides, inputs; the jobs.
* :mod:`.jobs` -- what a worker runs: one job -> one row (networks cached per process).
* :mod:`.results` -- the CSV columns, the appending writer, reading rows back, the summary.
* :mod:`.run` -- the output folder (ownership, resume, fingerprints) and the executors
  (serial, local Dask cluster, remote scheduler).
* :mod:`.report` -- report.html (matplotlib plots, embedded).
* :mod:`.commands` -- ``hwsim sweep``.

docs/sweep.md has the spec format, the columns and how to start a cluster.
"""
from __future__ import annotations

from .spec import SweepSpec, load_spec  # noqa: F401


def run_sweep(spec, out_dir, **kw):
    """Run ``spec`` into ``out_dir`` (see :func:`hwsim.sweep.run.run_sweep`)."""
    from .run import run_sweep as _run
    return _run(spec, out_dir, **kw)


__all__ = ["SweepSpec", "load_spec", "run_sweep"]
