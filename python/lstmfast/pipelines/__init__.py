"""The three applications, each with ``train``, ``evaluate`` and ``predict``:

* :mod:`lstmfast.pipelines.translation` (command ``lstmfast translate``)
* :mod:`lstmfast.pipelines.forecasting` (command ``lstmfast forecast``)
* :mod:`lstmfast.pipelines.sentiment` (command ``lstmfast sentiment``)

A trained pipeline lives in a model directory holding the network and its
preprocessing; see :mod:`lstmfast.pipelines.common`.
"""

from . import forecasting, sentiment, translation
from .common import PipelineError

__all__ = ["forecasting", "sentiment", "translation", "PipelineError"]
