"""Training stacked RNNs: data, optimizers, the tricks that keep BPTT stable, models and studies.

* :mod:`~rnnlib.training.data`: the adding problem, character corpora (:mod:`corpora <rnnlib.training>`
  ships them), batching and splits.
* :mod:`~rnnlib.training.optim`: SGD and Adam on ``{name: array}`` parameters.
* :mod:`~rnnlib.training.clipping`: gradient clipping by the joint norm.
* :mod:`~rnnlib.training.tbptt`: truncated BPTT, carrying the state across chunks.
* :mod:`~rnnlib.training.init`: recurrent weights with a chosen spectrum.
* :mod:`~rnnlib.training.residual`: residual connections between layers.
* :mod:`~rnnlib.training.sequence_model`: embedding, stack and per-step read-out with a masked loss.
* :mod:`~rnnlib.training.models` and :mod:`~rnnlib.training.train`: the language models and
  regressors of chapter 9 and their training loops.
* :mod:`~rnnlib.training.study` and :mod:`~rnnlib.training.gated_study`: the protocols and
  statistics of the depth study (chapter 9) and the gated study (chapter 10).
"""

from .clipping import clip_grad_norm
from .data import CharVocab, adding_problem, load_corpus
from .models import NumpyRNNLM, TorchRNNLM, TorchRNNRegressor
from .optim import SGD, Adam

__all__ = [
    "SGD",
    "Adam",
    "CharVocab",
    "NumpyRNNLM",
    "TorchRNNLM",
    "TorchRNNRegressor",
    "adding_problem",
    "clip_grad_norm",
    "load_corpus",
]
