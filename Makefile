# Entry points: `make book`, `make test`, `make lint`, `make execute`, `make clean`.
# Each creates .venv from requirements.txt on first use (Python 3.11 + pip).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The numerical environment (one thread per math library, PYTHONHASHSEED=0) is set
# in one place, tools/numerics.py: `make execute` applies it, and every pytest run
# gets it from the root conftest.py, so a plain `pytest --nbval chapters/...` behaves
# like `make test`. Values already in the environment win (to re-check the stored
# outputs under other kernels); OPENBLAS_CORETYPE is never set here.

.PHONY: all book lint test browser sandbox execute student student-book grade grade-batch clean distclean

all: test book

# Re-installed only when requirements.txt or pyproject.toml change.
# rfc3987-syntax, an optional extra of jsonschema (pulled in by jupyter-events), builds a parser
# at import: 1.7 s of CPU in every process that imports nbformat (pytest workers, the grader's
# command line, nbgrader, jupyter-book). It only checks the "iri" format of JSON schemas, which
# nothing here uses; without it jsonschema skips that format.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip uninstall -y -q rfc3987-syntax 2>/dev/null || true
	touch $@

# -W: warnings are errors; -n: nitpicky (missing references warn);
# --keep-going: report every warning, then fail; --all: fresh environment,
# so warnings from pages unchanged since the last build are not hidden.
# Then the Chinese edition (tools/i18n.py build: the same pages through the same Sphinx
# entry point with language=zh_CN and locales/zh_CN, same flags) into _build/zh_CN, copied
# to _build/html/zh_CN. Both, always: every page's language switch links to the other.
book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going --all
	$(BIN)/python tools/i18n.py build --all

# The Chinese edition's catalogs after the English changed: the pages' messages extracted
# (Sphinx gettext, into _build/gettext), merged into locales/zh_CN/LC_MESSAGES/*.po
# (sphinx-intl update), then what is left to translate listed per catalog.
.PHONY: i18n-update
i18n-update: $(STAMP)
	$(BIN)/python tools/i18n.py update

# The code habits (CONTRIBUTING.md, "Lint and types"; config in pyproject.toml): ruff's lint over the
# Python and the notebooks, ruff's formatter over the Python (notebooks are linted, not formatted),
# mypy over rnnlib and tools. Measured on 2 cores (2026-12-03): ruff check and ruff format --check
# 0.1 s each, cold or warm; mypy about 30 s of CPU from a cold .mypy_cache (mostly reading torch's
# and NumPy's types; CI's fresh clone is always cold), under 1 s warm. It runs before pytest rather
# than beside it: the suite already keeps both CPUs busy, so running mypy in parallel would save
# about half its time, and running it first reports a lint or type error in seconds, not after the
# whole suite.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# xdist workers: one more than the CPUs. Many tests wait on a kernel, a sandbox or a
# subprocess, so an extra worker keeps the CPUs busy (on 2 cores: 504 s with 3 workers
# against 610 s with 2, measured on 2026-12-03). Override: make test JOBS=2.
JOBS ?= $(shell python3 -c 'import os; print((os.cpu_count() or 1) + 1)' 2>/dev/null || echo auto)

# One pytest run: the unit tests in tests/ plus nbval over the notebooks in
# chapters/ (it re-runs each notebook and compares with the stored outputs,
# after folding rounding-level noise per tests/nbval_sanitize.cfg).
# --dist loadgroup: conftest.py puts each test in a group that runs on one worker (a
# notebook's cells share a kernel; a module shares its fixtures; the grading galleries
# split), and hands the longest groups out first (--no-loadscope-reorder keeps that order).
# Pointing at chapters/ keeps nbval out of _build/.
test: $(STAMP) lint browser sandbox
	$(BIN)/python -m compileall -q rnnlib tools >/dev/null  # bytecode written once, before the workers start
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup --no-loadscope-reorder -rs \
		--nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg \
		tests chapters

# tests/test_site.py drives Debian's Chromium headless. Install it when missing
# and we may (root with apt, as on CI); otherwise the browser tests are
# reported as SKIPPED with the reason, never passed silently.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  echo "WARNING: chromium is not installed and could not be; the browser tests will be SKIPPED" >&2; }

# The coursework grader runs submissions in a bubblewrap sandbox (tools/sandbox.py).
# Install it when missing and we may; otherwise the grader says "no sandbox" in every
# report and the tests that would damage an unsandboxed checkout are SKIPPED.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; }; }; } || \
	  echo "WARNING: bubblewrap is not installed and could not be; submissions are graded without a sandbox" >&2; }

# Re-run every notebook in _toc.yml in place (after changing rnnlib).
execute: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py

# Coursework (tools/coursework.py): student versions of the assignments in
# build/student/ (never overwriting a file it did not generate, or one a learner
# changed, unless FORCE=1); the student edition of the site (no solutions) in
# _build/student/html; and grading one submission: make grade NB=path.ipynb.
student: $(STAMP)
	$(BIN)/python tools/coursework.py student $(if $(FORCE),--force)

student-book: $(STAMP)
	$(BIN)/python tools/coursework.py site

grade: $(STAMP) sandbox
	$(BIN)/python tools/coursework.py grade $(NB)

# A class: make grade-batch SUBMITTED=path/to/submitted OUT=path/to/gradebook
grade-batch: $(STAMP) sandbox
	$(BIN)/python tools/coursework.py batch $(SUBMITTED) --out $(OUT)

clean:
	rm -rf _build .pytest_cache .hypothesis .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune \
		-exec rm -rf {} +
	find chapters -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +

# Also remove the virtualenv.
distclean: clean
	rm -rf $(VENV)
