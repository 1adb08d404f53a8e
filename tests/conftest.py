"""Fixtures shared across test folders: a live server, a recorded browser page, a small
crowded-nuclei image that the segment-instances tests share, and a count of the engine's
statistics passes that the resume tests share."""

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


@pytest.fixture
def statistics_passes(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every statistics pass of the engine over an image from here on, by image."""
    import scopeml.tiling.engine as engine

    calls: list[object] = []
    real = engine.compute_normalization

    def spy(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "compute_normalization", spy)
    return calls


@pytest.fixture
def no_address(tmp_path, monkeypatch):
    """An empty cache and no download address (torchvision's table made unavailable)."""
    import builtins

    monkeypatch.setenv("SCOPEML_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SCOPEML_WEIGHTS_URL", raising=False)
    real_import = builtins.__import__

    def refuse_torchvision(name, *args, **kwargs):
        if name.startswith("torchvision"):
            raise ImportError("no torchvision here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse_torchvision)
    return tmp_path / "cache" / "networks"
