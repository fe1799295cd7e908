"""The worked example of the article the course grew from.

Four time steps, a batch of two "sentences" ("I love PyTorch", "RNN is fun"),
three features per word, ``nn.RNN(input_size=3, hidden_size=5, num_layers=2)``
and a zero initial state. The article's input is the numbers 0.1, 0.2, ..., 2.4
laid out time-major: step ``t`` holds word ``t`` of sentence 1, then of sentence 2.
The article prints made-up outputs; the course prints the real ones, from
``torch.manual_seed(ARTICLE_SEED)`` before building the ``nn.RNN``.
"""

from __future__ import annotations

import numpy as np

SEQ_LEN, BATCH, INPUT_SIZE, HIDDEN_SIZE, NUM_LAYERS = 4, 2, 3, 5, 2
ARTICLE_SEED = 0


def article_input(batch_first: bool = False, dtype: type = np.float32) -> np.ndarray:
    """The article's input tensor.

    Returns:
        ``(4, 2, 3)`` time-major (``x[t, n]`` is word ``t`` of sentence ``n``), or
        ``(2, 4, 3)`` with ``batch_first=True`` (the article's second tensor, which
        is the first one transposed).
    """
    # 0.1 ... 2.4, computed as k/10 so each value is the nearest float to its decimal.
    x: np.ndarray = (np.arange(1, 25, dtype=np.float64) / 10).reshape(SEQ_LEN, BATCH, INPUT_SIZE).astype(dtype)
    return np.ascontiguousarray(x.transpose(1, 0, 2)) if batch_first else x
