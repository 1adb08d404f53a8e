"""YAML from untrusted hands: settings files a server receives, model packages' descriptions.

``yaml.SafeLoader`` builds no objects, but leaves two things unbounded: aliases, which a few
hundred bytes can nest into gigabytes once the data is walked (a "billion laughs"), and
nesting, which past Python's recursion limit (``[[[…]]]`` a thousand deep) stops the composer
with a ``RecursionError``, not a YAML error. :class:`SafeLoader` refuses both as YAML errors
at their line, as it does a key given twice.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "Refused", "SafeLoader", "compose", "load"]

#: Deepest nesting of mappings and sequences read (a settings file needs about six).
MAX_DEPTH = 64


class Refused(yaml.composer.ComposerError):
    """YAML this loader does not read: an alias, nesting past :data:`MAX_DEPTH`, or a key given
    twice in one mapping (PyYAML keeps the last silently: two ``pixel_size:`` lines, one used)."""


class SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases and with at most :data:`MAX_DEPTH` levels.

    >>> load("a: [1, {b: 2}]")
    {'a': [1, {'b': 2}]}
    >>> load("a: &x [1]\\nb: *x")
    Traceback (most recent call last):
    ...
    scopeml.safe_yaml.Refused: YAML aliases (*name) are not allowed...line 2, column 4...
    >>> load("a: 1\\nb: 2\\na: 3")
    Traceback (most recent call last):
    ...
    scopeml.safe_yaml.Refused: 'a' is given twice (first on line 1)...line 3, column 1...
    >>> load("[" * 1000 + "]" * 1000)
    Traceback (most recent call last):
    ...
    scopeml.safe_yaml.Refused: nested more than 64 levels deep...line 1, column 65...
    """

    _depth = 0

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        first: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = first.setdefault((key.tag, key.value), key.start_mark.line + 1)
                if line != key.start_mark.line + 1:
                    raise Refused(
                        None, None, f"{key.value!r} is given twice (first on line {line})",
                        key.start_mark,
                    )  # fmt: skip
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent: Any, index: Any) -> Any:
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            raise Refused(None, None, "YAML aliases (*name) are not allowed", mark)
        if self._depth >= MAX_DEPTH:
            raise Refused(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """An integer of at most :data:`MAX_DIGITS` digits (Python refuses to convert one of
        over 4300 with a ValueError: a server's 500)."""
        if len(str(node.value)) > MAX_DIGITS:
            raise Refused(None, None, f"a number of {len(node.value)} digits", node.start_mark)
        return super().construct_yaml_int(node)


#: The most digits an integer in YAML may have.
MAX_DIGITS = 100
SafeLoader.add_constructor("tag:yaml.org,2002:int", SafeLoader.construct_yaml_int)


def load(text: str | bytes) -> Any:
    """The data of ``text``, read by :class:`SafeLoader`."""
    return yaml.load(text, Loader=SafeLoader)


def compose(text: str | bytes) -> yaml.Node | None:
    """The node tree of ``text`` (with line marks), read by :class:`SafeLoader`."""
    return yaml.compose(text, Loader=SafeLoader)
