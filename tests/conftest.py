"""Fixtures shared across test folders: a live server, a recorded browser page, and a small
crowded-nuclei image that the segment-instances tests share."""

from pathlib import Path

import pytest

pytest_plugins = ["tests.browser.plugin"]


@pytest.fixture(scope="session")
def crowded_nuclei(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OME-Zarr of crowded nuclei over 200×180 px (0.5 µm): four 128-px tiles, nuclei
    across their borders. Read only."""
    from scopeml.io.convert import write_ome_zarr
    from scopeml.io.image import Image
    from scopeml.synthetic import realistic_nuclei

    pixels, _ = realistic_nuclei((200, 180), seed=3)
    path = tmp_path_factory.mktemp("crowded-nuclei") / "nuclei.ome.zarr"
    write_ome_zarr(path, Image(pixels[None, None, None], pixel_sizes={"Y": 0.5, "X": 0.5}))
    return path
