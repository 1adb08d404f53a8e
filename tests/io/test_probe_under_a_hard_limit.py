"""A cluster's ``ulimit -v`` sets the hard address-space limit too: the reader probe raised
its own cap above it and every file failed to open ("not allowed to raise maximum limit")."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no address-space limits")


def _under_hard_limit(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_info_opens_a_file_under_a_hard_limit_below_the_probes_cap(tmp_path):
    from scopeml.io.probe import probe_image

    image = tmp_path / "a.tif"
    tifffile.imwrite(image, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    limit = 3_900_000_000  # ulimit -v 3900000 (KB): below the probe's own 4 GiB cap
    assert probe_image.__kwdefaults__["memory_limit"] > limit
    code = f"from scopeml.cli import main; raise SystemExit(main(['info', {str(image)!r}]))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          preexec_fn=lambda: _under_hard_limit(limit), timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Y=64 X=64" in done.stdout
