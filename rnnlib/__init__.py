"""rnnlib: stacked RNNs from scratch (Elman, LSTM, GRU), at parity with ``torch.nn.RNN``/``LSTM``/``GRU``.

Seen from the top, the package is four things.

**The implementations** (this level):

* :class:`NumpyRNN`: pure NumPy, forward and hand-written backward (BPTT).
* :class:`TorchRNN`: an ``nn.Module`` built from tensor operations, autograd-friendly.
* :class:`NumpyLSTM` / :class:`TorchLSTM`: the same for ``torch.nn.LSTM`` (``proj_size`` included).
* :class:`NumpyGRU` / :class:`TorchGRU`: the same for ``torch.nn.GRU``.
* :mod:`rnnlib.stack` / :mod:`rnnlib.torch_stack`: the stack (layers, directions, dropout,
  lengths, checks) shared by every cell; :mod:`rnnlib.cell_config`, what each cell kind adds.
  A new cell type is a step function here (see :mod:`rnnlib.lstm`, :mod:`rnnlib.gru`).
* :func:`rnn_cell_forward` / :func:`rnn_cell_backward`: one step with an explicit cache.
* :mod:`rnnlib.gradcheck`: finite-difference checks with CS231n's relative error.
* :mod:`rnnlib.params`: names, shapes, initialisation and validation shared by both.

**Training** (:mod:`rnnlib.training`): data and corpora, optimizers, clipping, truncated BPTT,
initialisation, the models of chapter 9, training loops, and the depth and gated studies.

**Chapter aids** (:mod:`rnnlib.explain`): what the chapters use to show, measure and explain: the
worked example, shape tables, data-flow orders and diagrams, gradient-flow measurements, memory
layouts, the performance ladder and the timing helper. A new figure helper goes here.

**Coursework** (:mod:`rnnlib.coursework`): the diagnostic checks of the assignments, the deliberately
wrong backward passes they recognise, and the grader's in-kernel side (wire format, referee). A new
assignment's checks go here.
"""

from .gradcheck import check_rnn_gradients, numerical_gradient, numerical_gradient_array, rel_error
from .gru import NumpyGRU
from .lstm import NumpyLSTM
from .numpy_rnn import NumpyRNN, layer_backward, layer_forward, rnn_cell_backward, rnn_cell_forward
from .params import num_parameters, param_name, param_shapes
from .torch_gru import TorchGRU
from .torch_lstm import TorchLSTM
from .torch_rnn import TorchRNN

__all__ = [
    "NumpyGRU",
    "NumpyLSTM",
    "NumpyRNN",
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
