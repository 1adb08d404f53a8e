"""Doctest collection of the plugin: its Qt modules are left out when napari is not installed
(the GUI tests in ``tests/napari`` then skip with the reason)."""

import importlib.util

collect_ignore_glob = (
    ["*.py"]
    if importlib.util.find_spec("napari") is None or importlib.util.find_spec("qtpy") is None
    else []
)
