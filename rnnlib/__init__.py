"""rnnlib: stacked RNNs from scratch (Elman, LSTM, GRU), at parity with ``torch.nn.RNN``/``LSTM``/``GRU``.

* :class:`NumpyRNN`: pure NumPy, forward and hand-written backward (BPTT).
* :class:`TorchRNN`: an ``nn.Module`` built from tensor operations, autograd-friendly.
* :class:`NumpyLSTM` / :class:`TorchLSTM`: the same for ``torch.nn.LSTM`` (``proj_size`` included).
* :class:`NumpyGRU` / :class:`TorchGRU`: the same for ``torch.nn.GRU``.
* :mod:`rnnlib.stack` / :mod:`rnnlib.torch_stack`: the stack (layers, directions, dropout,
  lengths, checks) shared by every cell.
* :func:`rnn_cell_forward` / :func:`rnn_cell_backward`: one step with an explicit cache.
* :mod:`rnnlib.gradcheck`: finite-difference checks with CS231n's relative error.
* :mod:`rnnlib.params`: names, shapes, initialisation and validation shared by both.

Around them, one concept per module: :mod:`~rnnlib.examples` (the article's worked
example), :mod:`~rnnlib.shapes`, :mod:`~rnnlib.dataflow` and :mod:`~rnnlib.diagrams`
(computation orders and the unrolled grid), the figures :mod:`~rnnlib.memory_layout`,
:mod:`~rnnlib.gradient_diagram`, :mod:`~rnnlib.bidirectional_diagram` and
:mod:`~rnnlib.packing_diagram`, :mod:`~rnnlib.sequence_model` (embedding, read-out and masked
per-step loss around a stack), :mod:`~rnnlib.gradient_flow`, :mod:`~rnnlib.residual`,
:mod:`~rnnlib.clipping`, :mod:`~rnnlib.tbptt`, :mod:`~rnnlib.init` and
:mod:`~rnnlib.mistakes` (training signals), :mod:`~rnnlib.optim`, :mod:`~rnnlib.data`,
:mod:`~rnnlib.models` and :mod:`~rnnlib.train` (training on real tasks), :mod:`~rnnlib.study`
(the depth study's protocol and statistics), and
:mod:`~rnnlib.checks` (diagnostic feedback for the coursework).
"""

from .clipping import clip_grad_norm
from .data import CharVocab, adding_problem, load_corpus
from .gradcheck import check_rnn_gradients, numerical_gradient, numerical_gradient_array, rel_error
from .gru import NumpyGRU
from .lstm import NumpyLSTM
from .numpy_rnn import NumpyRNN, layer_backward, layer_forward, rnn_cell_backward, rnn_cell_forward
from .models import NumpyRNNLM, TorchRNNLM, TorchRNNRegressor
from .optim import SGD, Adam
from .params import num_parameters, param_name, param_shapes
from .torch_gru import TorchGRU
from .torch_lstm import TorchLSTM
from .torch_rnn import TorchRNN

__all__ = [
    "SGD",
    "Adam",
    "CharVocab",
    "NumpyGRU",
    "NumpyLSTM",
    "NumpyRNN",
    "NumpyRNNLM",
    "TorchRNNLM",
    "TorchRNNRegressor",
    "adding_problem",
    "clip_grad_norm",
    "load_corpus",
    "TorchGRU",
    "TorchLSTM",
    "TorchRNN",
    "check_rnn_gradients",
    "layer_backward",
    "layer_forward",
    "num_parameters",
    "numerical_gradient",
    "numerical_gradient_array",
    "param_name",
    "param_shapes",
    "rel_error",
    "rnn_cell_backward",
    "rnn_cell_forward",
]
