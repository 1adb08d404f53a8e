"""Every name ``scopeml.api`` exports is one of ``scopeml``'s: the facade has one namespace."""

from __future__ import annotations

import scopeml as sm
import scopeml.api as api


def test_the_facade_exports_no_name_the_package_lacks():
    assert set(api.__all__) <= set(sm.__all__), set(api.__all__) - set(sm.__all__)
    assert all(getattr(sm, name) is getattr(api, name) for name in api.__all__)
