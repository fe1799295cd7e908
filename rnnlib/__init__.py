"""rnnlib: stacked Elman RNNs from scratch, at parity with ``torch.nn.RNN``.

* :class:`NumpyRNN`: pure NumPy, forward and hand-written backward (BPTT).
* :class:`TorchRNN`: an ``nn.Module`` built from tensor operations, autograd-friendly.
* :func:`rnn_cell_forward` / :func:`rnn_cell_backward`: one step with an explicit cache.
* :mod:`rnnlib.gradcheck`: finite-difference checks with CS231n's relative error.
* :mod:`rnnlib.params`: names, shapes, initialisation and validation shared by both.
"""

from .gradcheck import check_rnn_gradients, numerical_gradient, numerical_gradient_array, rel_error
from .numpy_rnn import NumpyRNN, layer_backward, layer_forward, rnn_cell_backward, rnn_cell_forward
from .params import num_parameters, param_name, param_shapes
from .torch_rnn import TorchRNN

__all__ = [
    "NumpyRNN",
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
