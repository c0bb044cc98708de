"""The three applications, each with ``train``, ``evaluate`` and ``predict``:

* :mod:`lstmfast.pipelines.translation` (command ``lstmfast translate``)
* :mod:`lstmfast.pipelines.forecasting` (command ``lstmfast forecast``)
* :mod:`lstmfast.pipelines.sentiment` (command ``lstmfast sentiment``)

``PIPELINES`` maps each command name to its module. A pipeline module has
``PIPELINE`` (its name), ``SUMMARY`` (one line for the command's help),
``CONFIG`` (the dataclass of its settings, whose ``option`` fields are the
flags of ``lstmfast <name> train`` and whose ``quick()`` is ``--quick``),
``train(config, out, verbose, evaluate_after, **settings)``,
``evaluate(model_dir, data, plot, verbose)`` and ``predict(model_dir, ...)``.

A trained pipeline lives in a model directory holding the network and its
preprocessing; see :mod:`lstmfast.pipelines.common`.
"""

import importlib

from .common import PIPELINE_MODULES, PipelineError, default_model_dir

PIPELINES = {name: importlib.import_module(f"{__name__}.{module}") for name, module in PIPELINE_MODULES.items()}

__all__ = ["PIPELINES", "forecasting", "sentiment", "translation", "PipelineError", "default_model_dir"]
