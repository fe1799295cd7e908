"""Coursework: the assignments' diagnostic checks and the grader's in-kernel side.

* :mod:`~rnnlib.coursework.checks`: every ``check_*`` runs a learner's function on probe inputs and
  either passes or raises an ``AssertionError`` whose message is a diagnosis. The notebooks import
  this module; it re-exports the checks of :mod:`~rnnlib.coursework.a1` to :mod:`~rnnlib.coursework.a4`
  (one module per assignment), built on :mod:`~rnnlib.coursework.engine` (the diagnosis engine, the
  grader's plan/collect/judge split, the registry through which an assignment plugs in).
* :mod:`~rnnlib.coursework.mistakes`: deliberately wrong backward passes, the classic BPTT mistakes
  the checks and chapter 5 recognise.
* :mod:`~rnnlib.coursework.grading`, :mod:`~rnnlib.coursework.wire` and
  :mod:`~rnnlib.coursework.referee`: what runs in a submission's kernel for the grader
  (``tools/coursework.py``): the answer hook, the data-only wire format, the hidden tests' referee.
"""
