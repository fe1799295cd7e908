"""Flag coursework submissions whose code is the published reference solution.

The coursework notebooks ``chapters/coursework/A*.ipynb`` are nbgrader *solution*
notebooks, and the course is open: anyone can read the solutions. The grader therefore
cannot treat a correct answer as the learner's own work without a second look. This
module finds the solution cells whose submitted code is the reference solution up to
cosmetic changes, so that a teacher can look at them. It only *flags*; it never changes a
grade.

Three pure functions (no I/O besides their arguments):

* :func:`normalise` - a canonical form of a piece of Python: parsed with :mod:`ast`,
  docstrings, comments, ``pass``, type annotations and IPython magics dropped, every
  name bound in the code renamed ``v0, v1, ...`` in order of first appearance, keyword
  arguments sorted, ``a += b`` spelt ``a = a + b``, and ``a, b = x, y`` spelt as two
  assignments; then :func:`ast.unparse`. Attribute names, imported names, globals and
  builtins (names never bound in the code), keyword-argument names and constants are kept,
  because they are what the code *does* rather than what its author called things.
* :func:`solution_region` - the code between ``### BEGIN SOLUTION`` and ``### END
  SOLUTION``.
* :func:`reference_matches` - the grade_ids whose reference solution region appears, as
  a whole run of statements, in the normalised submission cell.

What counts as a match
----------------------
Renaming variables, reformatting, removing comments or docstrings, reordering keyword
arguments, merging or splitting a multiple assignment, and ``+=`` versus ``= ... +`` all
still match. A genuinely different implementation (``np.einsum`` instead of ``@``, a
``while`` loop instead of a ``for`` loop, a list comprehension instead of a loop with
``append``, a preallocated array instead of a list) does not: the comparison is on the
syntax tree, not on behaviour.

The rule for short regions
--------------------------
A region is *too short to flag*, and is never reported, when after normalisation it

* has fewer than ``min_tokens`` tokens (``return x + 1``), or
* is a single simple statement: one logical line with no body, such as A1's
  ``return np.tanh(x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)``.

Why: a one-statement region is the formula the task asks for. Any correct answer written
as one expression coincides with it up to the names of the arguments - which the
normaliser erases - so equality is evidence of having understood the task, not of having
copied it. From two statements on, the learner chooses how to split the work into
steps, which intermediate values to name, and in what order; the same choices as the
reference, in the same order, are worth a teacher's look. (The statement count is taken
from the source as written, so ``a, b = f(x), g(x)`` is one statement even though the
normaliser spells it as two.)
"""

from __future__ import annotations

import ast
import copy
import io
import re
import textwrap
import tokenize
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["normalise", "solution_region", "reference_matches"]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"

# IPython lines that are not Python: magics (%time, %%capture) and shell escapes (!pip).
_MAGIC_LINE = re.compile(r"^\s*[%!]")

_Node = TypeVar("_Node", bound=ast.AST)  # generic_visit gives back the node it was given

# Statement fields that hold a list of statements (bodies of def, for, if, with, try...).
_BODY_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")

# Tokens that carry meaning; layout tokens (NEWLINE, INDENT, ...) are not counted.
_SIGNIFICANT_TOKENS = {tokenize.NAME, tokenize.OP, tokenize.NUMBER, tokenize.STRING}
for _name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END"):  # Python >= 3.12
    if hasattr(tokenize, _name):
        _SIGNIFICANT_TOKENS.add(getattr(tokenize, _name))


# --------------------------------------------------------------------------------------
# Parsing and structural normalisation (no renaming yet)
# --------------------------------------------------------------------------------------


def _strip_magics(source: str) -> str:
    """Blank IPython magic and shell lines, keeping the line numbers of everything else.

    Line numbers matter: the solution region of a reference cell is located by them.
    """
    return "\n".join("" if _MAGIC_LINE.match(line) else line for line in source.split("\n"))


def _is_noop(stmt: ast.stmt) -> bool:
    """``pass``, ``...`` and bare string statements (docstrings, string "comments")."""
    if isinstance(stmt, ast.Pass):
        return True
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and (isinstance(stmt.value.value, str) or stmt.value.value is Ellipsis)
    )


def _names_in(nodes: Iterable[ast.AST]) -> set[str]:
    """Every ``Name`` identifier occurring in ``nodes``."""
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


class _Canonicaliser(ast.NodeTransformer):
    """Spelling normalisations that do not change what the code does.

    Each new node copies the location of the statement it replaces, so that a statement
    can still be traced to the source line it came from.
    """

    # -- things that carry no behaviour ---------------------------------------------
    def _clean_body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        kept: list[ast.stmt] = []
        for stmt in body:
            if _is_noop(stmt):
                continue
            result = self.visit(stmt)
            if result is None:
                continue
            kept.extend(result if isinstance(result, list) else [result])
        return kept

    def generic_visit(self, node: _Node) -> _Node:
        for field, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                cleaned = self._clean_body(value)
                # An emptied body still needs a statement for the code to be valid Python;
                # one canonical `pass` keeps `def f(): "doc"` and `def f(): pass` equal.
                if not cleaned and field == "body":
                    cleaned = [ast.copy_location(ast.Pass(), value[0])]
                setattr(node, field, cleaned)
            elif isinstance(value, list):
                items = [self.visit(item) if isinstance(item, ast.AST) else item for item in value]
                setattr(node, field, [item for item in items if item is not None])
            elif isinstance(value, ast.AST):
                setattr(node, field, self.visit(value))
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.annotation = None
        return node

    def _drop_returns(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.returns = None
        return self.generic_visit(node)

    visit_FunctionDef = _drop_returns
    visit_AsyncFunctionDef = _drop_returns

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.stmt | None:
        # `x: int = 3` is `x = 3`; a bare declaration `x: int` does nothing at run time.
        if node.value is None:
            return None
        assign = ast.Assign(targets=[node.target], value=node.value)
        return self.visit(ast.copy_location(assign, node))

    # -- equivalent spellings ----------------------------------------------------------
    def visit_AugAssign(self, node: ast.AugAssign) -> ast.stmt:
        # `a += b` and `a = a + b` are the same step of an algorithm (numpy's in-place
        # update differs, but not in a way that makes copying less of a copy).
        load = copy.deepcopy(node.target)
        for sub in ast.walk(load):
            if hasattr(sub, "ctx"):
                sub.ctx = ast.Load()
        load.ctx = ast.Load()
        value = ast.BinOp(left=load, op=node.op, right=node.value)
        assign = ast.Assign(targets=[node.target], value=value)
        return self.visit(ast.copy_location(assign, node))

    def visit_Assign(self, node: ast.Assign) -> ast.stmt | list[ast.stmt]:
        node = self.generic_visit(node)
        # `a, b = x, y` -> `a = x; b = y` when that cannot change the result: no name on
        # the left is read on the right (so not the swap `a, b = b, a`), no starred items.
        if len(node.targets) != 1:
            return node
        target, value = node.targets[0], node.value
        sequences = (ast.Tuple, ast.List)
        if not (isinstance(target, sequences) and isinstance(value, sequences)):
            return node
        if len(target.elts) != len(value.elts) or len(target.elts) < 2:
            return node
        if any(isinstance(e, ast.Starred) for e in [*target.elts, *value.elts]):
            return node
        if _names_in(target.elts) & _names_in(value.elts):
            return node
        return [
            ast.copy_location(ast.Assign(targets=[t], value=v), node)
            for t, v in zip(target.elts, value.elts, strict=True)
        ]

    def visit_Call(self, node: ast.Call) -> ast.AST:
        node = self.generic_visit(node)
        # Keyword order is free; `**kwargs` (arg None) stays after the named ones.
        node.keywords.sort(key=lambda k: (k.arg is None, k.arg or ""))
        return node


def _prepare(source: str) -> ast.Module | None:
    """Parse ``source`` and apply the spelling normalisations; None if it does not parse.

    The source is dedented first so that a region cut out of a function body parses.
    """
    text = textwrap.dedent(_strip_magics(source))
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):  # ValueError: null bytes in the source
        return None
    tree = _Canonicaliser().visit(tree)
    return ast.fix_missing_locations(tree)


# --------------------------------------------------------------------------------------
# Renaming
# --------------------------------------------------------------------------------------


def _bound_names(tree: ast.AST) -> set[str]:
    """The names the code itself binds (locals), minus the imported ones.

    A name counts as bound when it is assigned, deleted, a loop/with/except/comprehension
    target, a function argument, or the name of a function or class defined here; those
    are the author's choices and get renamed. Imported names (``np``, ``nn``) and names
    never bound here (globals from other cells, builtins) are the API the code calls and
    are kept.
    """
    bound: set[str] = set()
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                imported.add((alias.asname or alias.name).split(".")[0])
    return bound - imported


class _Renamer(ast.NodeVisitor):
    """Rename the bound names in place, ``v0, v1, ...`` in order of first appearance.

    The order is the order of a fixed traversal of the tree (fields in ``_fields``
    order), so two trees of the same shape get the same names whatever their authors
    called things. One mapping for the whole piece of code, ignoring scopes: the same
    identifier in two functions gets one canonical name, which is what a copy keeps too.
    """

    def __init__(self, bound: set[str]) -> None:
        self.bound = bound
        self.mapping: dict[str, str] = {}

    def _canonical(self, name: str) -> str:
        if name not in self.bound:
            return name
        if name not in self.mapping:
            self.mapping[name] = f"v{len(self.mapping)}"
        return self.mapping[name]

    def visit_Name(self, node: ast.Name) -> None:
        node.id = self._canonical(node.id)

    def visit_arg(self, node: ast.arg) -> None:
        node.arg = self._canonical(node.arg)
        self.generic_visit(node)

    def _visit_named(self, node: ast.AST) -> None:
        node.name = self._canonical(node.name)  # type: ignore[attr-defined]
        self.generic_visit(node)

    visit_FunctionDef = _visit_named
    visit_AsyncFunctionDef = _visit_named
    visit_ClassDef = _visit_named

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            node.name = self._canonical(node.name)
        self.generic_visit(node)

    def _visit_pattern(self, node: ast.MatchAs | ast.MatchStar) -> None:
        if node.name:
            node.name = self._canonical(node.name)
        self.generic_visit(node)

    visit_MatchAs = _visit_pattern
    visit_MatchStar = _visit_pattern

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            node.rest = self._canonical(node.rest)
        self.generic_visit(node)

    def _visit_scope_decl(self, node: ast.Global | ast.Nonlocal) -> None:
        node.names = [self._canonical(n) for n in node.names]

    visit_Global = _visit_scope_decl
    visit_Nonlocal = _visit_scope_decl


def _renamed(stmts: list[ast.stmt], bound: set[str]) -> list[str]:
    """The statements, renamed from ``v0`` in their own order, one unparsed string each.

    Works on copies: the same statements are renamed afresh for every comparison window.
    """
    renamer = _Renamer(bound)
    out = []
    for stmt in stmts:
        stmt = copy.deepcopy(stmt)
        renamer.visit(stmt)
        out.append(ast.unparse(stmt))
    return out


def normalise(source: str) -> str | None:
    """A canonical form of the Python code ``source``, or None if it does not parse.

    IPython magic/shell lines (starting with ``%`` or ``!``) are dropped before parsing;
    docstrings, comments, ``pass`` and type annotations are dropped; keyword arguments
    are sorted; ``a += b`` becomes ``a = a + b`` and ``a, b = x, y`` two assignments;
    every name bound in the code (arguments, assigned names, loop and comprehension
    variables, functions and classes defined here) is renamed ``v0, v1, ...`` in order of
    first appearance. Attribute names, imported names, names never bound here (globals,
    builtins), keyword-argument names and constants are kept. The result is
    :func:`ast.unparse` of the transformed tree.

    >>> normalise("def f(a, b):\\n    '''Add.'''\\n    return a + b  # sum")
    'def v0(v1, v2):\\n    return v1 + v2'
    """
    tree = _prepare(source)
    if tree is None:
        return None
    return "\n".join(_renamed(tree.body, _bound_names(tree)))


# --------------------------------------------------------------------------------------
# Solution regions
# --------------------------------------------------------------------------------------


def _region_line_ranges(source: str) -> list[tuple[int, int]]:
    """1-based inclusive line ranges strictly between the BEGIN/END SOLUTION markers.

    An unterminated region runs to the end of the source; no markers at all means the
    whole source is the region (nbgrader's rule for solution cells without markers).
    """
    lines = source.split("\n")
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith(BEGIN_SOLUTION) and start is None:
            start = number + 1
        elif stripped.startswith(END_SOLUTION) and start is not None:
            ranges.append((start, number - 1))
            start = None
    if start is not None:
        ranges.append((start, len(lines)))
    if not ranges and not any(line.strip().startswith(BEGIN_SOLUTION) for line in lines):
        ranges.append((1, len(lines)))
    return ranges


def solution_region(source: str) -> str:
    """The code between ``### BEGIN SOLUTION`` and ``### END SOLUTION``.

    All regions of the cell, each dedented (so that a region cut out of a function body
    parses on its own), joined by newlines; the whole source if the cell has no markers.
    """
    lines = source.split("\n")
    return "\n".join(textwrap.dedent("\n".join(lines[first - 1 : last])) for first, last in _region_line_ranges(source))


def _statement_lists(node: ast.AST) -> Iterator[list[ast.stmt]]:
    """Every list of statements in the tree: module and function bodies, loop bodies..."""
    for field in _BODY_FIELDS:
        body = getattr(node, field, None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            yield body
    for child in ast.iter_child_nodes(node):
        yield from _statement_lists(child)


def _region_runs(tree: ast.Module, ranges: list[tuple[int, int]]) -> list[list[ast.stmt]]:
    """The reference's solution code as runs of consecutive statements of one body.

    A statement belongs to the solution when all its lines lie inside one region; the
    outermost such statements are taken, and consecutive ones in the same body form one
    run. A4's model cell, say, gives two runs: the two lines of ``__init__`` after
    ``super().__init__()``, and the body of ``forward``.
    """

    def inside(stmt: ast.stmt) -> bool:
        end = stmt.end_lineno or stmt.lineno
        return any(first <= stmt.lineno and end <= last for first, last in ranges)

    runs: list[list[ast.stmt]] = []

    def walk(body: list[ast.stmt]) -> None:
        run: list[ast.stmt] = []
        for stmt in body:
            if inside(stmt):
                run.append(stmt)
                continue
            if run:
                runs.append(run)
                run = []
            for field in _BODY_FIELDS:
                sub = getattr(stmt, field, None)
                if isinstance(sub, list) and sub and isinstance(sub[0], ast.stmt):
                    walk(sub)
                elif isinstance(sub, list):  # handlers / match cases hold bodies
                    for item in sub:
                        if isinstance(getattr(item, "body", None), list):
                            walk(item.body)
        if run:
            runs.append(run)

    walk(tree.body)
    return runs


def _count_tokens(code: str) -> int:
    """Meaningful tokens (names, operators, numbers, strings) in ``code``."""
    try:
        return sum(tok.type in _SIGNIFICANT_TOKENS for tok in tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return len(code.split())


def _too_short(runs: list[list[ast.stmt]], bound: set[str], min_tokens: int) -> bool:
    """The short-region rule (see the module docstring)."""
    stmts = [stmt for run in runs for stmt in run]
    if not stmts:
        return True
    tokens = sum(_count_tokens("\n".join(_renamed(run, bound))) for run in runs)
    if tokens < min_tokens:
        return True
    # One statement as written: split assignments share their original line number.
    written = {(stmt.lineno, stmt.col_offset) for stmt in stmts if not isinstance(stmt, ast.Pass)}
    has_body = any(isinstance(getattr(stmt, "body", None), list) for stmt in stmts)
    return len(written) <= 1 and not has_body


def _appears_in(run: list[ast.stmt], ref_bound: set[str], tree: ast.Module, sub_bound: set[str]) -> bool:
    """Whether ``run``, renamed on its own, equals some window of a body of ``tree``.

    Each window is renamed on its own too, so the names the submission introduced
    before the window (an extra helper variable, a renamed argument) do not shift the
    canonical numbering inside it.
    """
    target = _renamed(run, ref_bound)
    size = len(target)
    for body in _statement_lists(tree):
        for start in range(len(body) - size + 1):
            if _renamed(body[start : start + size], sub_bound) == target:
                return True
    return False


def reference_matches(
    submission_cells: dict[str, str], solution_cells: dict[str, str], *, min_tokens: int = 8
) -> list[str]:
    """The grade_ids whose submitted cell contains the reference solution, in order.

    Both dicts map a grade_id to a cell's source: ``solution_cells`` from the solution
    notebook, ``submission_cells`` from the learner's notebook. For each solution
    grade_id (in the order of ``solution_cells``) the submission matches when

    * the whole submitted cell normalises (:func:`normalise`) to the same code as the
      whole reference cell, or
    * every run of reference solution statements (see :func:`solution_region`; a cell
      whose regions lie in two methods has two runs) appears, normalised, as a run of
      consecutive statements of some body in the normalised submitted cell - so extra
      code around the copied statements does not hide them,

    unless the reference region is too short to flag: fewer than ``min_tokens`` tokens
    after normalisation, or a single simple statement (the formula the task asks for,
    which any correct one-line answer reproduces; see the module docstring). Cells
    missing from the submission, or that do not parse, do not match.
    """
    matches: list[str] = []
    for grade_id, reference in solution_cells.items():
        submitted = submission_cells.get(grade_id)
        if submitted is None:
            continue
        sub_tree = _prepare(submitted)
        if sub_tree is None:
            continue
        ref_tree = _prepare(reference)
        if ref_tree is not None:
            # Same line numbers as the parsed tree: magic lines blanked, not removed.
            ranges = _region_line_ranges(textwrap.dedent(_strip_magics(reference)))
            runs = _region_runs(ref_tree, ranges)
            ref_bound = _bound_names(ref_tree)
        else:
            # A reference that parses only region by region: the region alone is the run.
            region_tree = _prepare(solution_region(reference))
            if region_tree is None:
                continue
            runs, ref_bound = [region_tree.body], _bound_names(region_tree)
        if _too_short(runs, ref_bound, min_tokens):
            continue
        sub_bound = _bound_names(sub_tree)
        whole_equal = ref_tree is not None and _renamed(ref_tree.body, ref_bound) == _renamed(sub_tree.body, sub_bound)
        if whole_equal or all(_appears_in(run, ref_bound, sub_tree, sub_bound) for run in runs):
            matches.append(grade_id)
    return matches
