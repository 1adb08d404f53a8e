"""No function in ``src/`` over about 60 lines of code (issue #12, item 7).

A function's code lines are the lines of its body that hold code: the signature (where typer
option declarations live), the docstring, blank lines and comment-only lines do not count.
Nested functions count towards their enclosing function as well as on their own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
LIMIT = 60


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> int:
    """Lines of code in the body of ``node``, without its docstring, blanks and comments."""
    body = node.body
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
        body = body[1:]
    if not body:
        return 0
    first, last = body[0].lineno, max(n.end_lineno or n.lineno for n in body)
    text = (line.strip() for line in lines[first - 1 : last])
    return sum(1 for line in text if line and not line.startswith("#"))


def long_functions(root: Path = SRC, limit: int = LIMIT) -> list[tuple[str, int]]:
    """``("path:line name", code lines)`` for every function over ``limit``, longest first."""
    found = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = code_lines(node, lines)
                if n > limit:
                    where = f"{path.relative_to(root).as_posix()}:{node.lineno} {node.name}"
                    found.append((where, n))
    return sorted(found, key=lambda item: -item[1])


def test_code_lines_skip_docstring_comments_and_signature() -> None:
    source = 'def f(\n    a: int = 1,\n    b: int = 2,\n):\n    """Doc.\n\n    More."""\n'
    source += "    # a comment\n\n    x = a\n    return x + b\n"
    node = ast.parse(source).body[0]
    assert code_lines(node, source.splitlines()) == 2


def test_a_long_function_is_found(tmp_path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(61))
    (tmp_path / "m.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}")
    assert long_functions(tmp_path) == [("m.py:5 long", 61)]


#: Functions still over the limit, by file and name, with the engineer whose area they are in.
#: A new long function fails the first test below; when one of these is split, the second
#: test passes unexpectedly (strict) and this list must lose it. Empty since issue #12's
#: splits (train_unet, the bioimage.io export, api.segment): keep it so.
KNOWN: dict[tuple[str, str], str] = {}


def _offenders() -> set[tuple[str, str]]:
    return {(where.split(":")[0], where.split()[-1]) for where, _ in long_functions()}


def test_no_new_function_over_the_limit() -> None:
    new = sorted(_offenders() - set(KNOWN))
    assert not new, f"functions over {LIMIT} code lines: {new}"


@pytest.mark.xfail(
    bool(KNOWN),
    reason="still over 60 code lines: "
    + "; ".join(f"{f} {n} ({o})" for (f, n), o in KNOWN.items()),
    strict=True,
)
def test_no_function_over_the_limit() -> None:
    assert _offenders() == set()
