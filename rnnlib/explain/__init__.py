"""Chapter aids: what the chapters use to show, measure and explain (not part of the models).

Named ``explain`` so that no one takes it for the book's ``chapters/`` folder. One concept per module:

* :mod:`~rnnlib.explain.examples`: the article's worked example (``nn.RNN(3, 5, 2)``, input 4x2x3).
* :mod:`~rnnlib.explain.shapes`: shape tables of ``nn.RNN`` and the course's two implementations.
* :mod:`~rnnlib.explain.dataflow` and :mod:`~rnnlib.explain.diagrams`: computation orders of the
  ``L x T`` grid and the unrolled diagram; :mod:`~rnnlib.explain.gradient_diagram`,
  :mod:`~rnnlib.explain.bidirectional_diagram`, :mod:`~rnnlib.explain.packing_diagram` and
  :mod:`~rnnlib.explain.memory_layout`, the other figures.
* :mod:`~rnnlib.explain.gradient_flow`: BPTT one cell at a time with explicit caches, and
  measurements of the gradient's size (chapters 5 and 6).
* :mod:`~rnnlib.explain.performance` and :mod:`~rnnlib.explain.timing`: chapter 11's optimisation
  ladder and the timing helper shared with ``benchmarks/rnn_speed.py``.

A new figure helper goes here, as its own module.
"""
