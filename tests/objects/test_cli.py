"""``scopeml objects label|measure|train|classify`` end to end on small files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tifffile

from scopeml.cli import main
from scopeml.synthetic import synthetic_nuclei


def test_measure_train_classify(tmp_path, capsys):
    image, labels = synthetic_nuclei((160, 160), density=0.003, channels=2, seed=5)
    np.save(tmp_path / "labels.npy", labels)
    tifffile.imwrite(tmp_path / "image.ome.tif", image, metadata={"axes": "CYX"})
    table_path = tmp_path / "objects.csv"
    assert (
        main(
            [
                "objects",
                "measure",
                str(tmp_path / "labels.npy"),
                "--image",
                str(tmp_path / "image.ome.tif"),
                "-o",
                str(table_path),
                "-q",
                "--pixel-size",
                "0.5",
                "--tile-size",
                "64",
            ]
        )
        == 0
    )
    table = pd.read_csv(table_path)
    assert len(table) == labels.max()
    assert {"area_um2", "intensity_mean_C1", "feret_diameter_max"} <= set(table.columns)

    table["size"] = np.where(table["area"] > table["area"].median(), "large", "small")
    table.to_parquet(tmp_path / "annotated.parquet")
    model = tmp_path / "size.zip"
    assert (
        main(
            [
                "objects",
                "train",
                str(tmp_path / "annotated.parquet"),
                "--class-column",
                "size",
                "-o",
                str(model),
                "--features",
                "area,perimeter",
                "--n-estimators",
                "10",
            ]
        )
        == 0
    )
    out = tmp_path / "classified.parquet"
    assert main(["objects", "classify", str(model), str(table_path), "-o", str(out)]) == 0
    classified = pd.read_parquet(out)
    assert (classified["class"] == table["size"]).mean() > 0.95


def test_label_command(tmp_path):
    _, labels = synthetic_nuclei((100, 90), density=0.004, seed=1)
    tifffile.imwrite(tmp_path / "semantic.tif", (labels > 0).astype(np.uint8))
    out = tmp_path / "objects.zarr"
    assert (
        main(
            [
                "objects",
                "label",
                str(tmp_path / "semantic.tif"),
                "-o",
                str(out),
                "--tile-size",
                "32",
                "-q",
            ]
        )
        == 0
    )
    from scopeml.io import open_image

    labelled = open_image(out)  # an OME-Zarr image, every axis kept
    assert labelled.shape == (1, 1, 1, 1, 100, 90)
    assert (labelled.read()[0, 0, 0, 0] > 0).sum() == (labels > 0).sum()


def test_a_two_time_point_segmentation_is_labelled_and_measured_at_both(tmp_path, capsys):
    from scopeml.io import open_image, write_ome_tiff
    from scopeml.pixel import train_classifier

    frames = [synthetic_nuclei((64, 72), density=0.004, seed=seed) for seed in (1, 2)]
    pixels = np.stack([image[0] for image, _ in frames])  # T×Y×X
    movie = tmp_path / "movie.ome.tif"
    write_ome_tiff(movie, pixels, axes="TYX", pixel_sizes={"Y": 0.5, "X": 0.5}, tile=(16, 16))
    sparse = np.zeros_like(frames[0][1])
    sparse[::5, ::5] = np.where(frames[0][1][::5, ::5] > 0, 2, 1)
    model = train_classifier(
        frames[0][0], sparse, features="gaussian_smoothing:1", n_estimators=4, seed=0
    ).save(tmp_path / "px.czseg")
    seg = tmp_path / "seg.ome.zarr"
    assert main(["segment", str(movie), "-m", str(model), "-o", str(seg), "--quiet"]) == 0
    assert open_image(seg / "labels").sizes["T"] == 2
    objects = tmp_path / "objects.ome.zarr"
    assert main(["objects", "label", str(seg / "labels"), "-o", str(objects), "--class",
                 "class 2", "-q", "--tile-size", "32"]) == 0  # fmt: skip
    assert "2 time points" in capsys.readouterr().out
    by_value = tmp_path / "by_value.ome.zarr"
    assert main(["objects", "label", str(seg / "labels"), "-o", str(by_value), "--class-id", "2",
                 "-q", "--tile-size", "32"]) == 0  # fmt: skip
    np.testing.assert_array_equal(open_image(by_value).read(), open_image(objects).read())
    assert main(["objects", "label", str(seg / "labels"), "-o", str(tmp_path / "x.ome.zarr"),
                 "--class", "cell"]) == 2  # fmt: skip
    assert "no class 'cell'; classes are class 1, class 2" in capsys.readouterr().err
    labelled = open_image(objects)
    assert labelled.sizes["T"] == 2 and labelled.pixel_sizes == {"Y": 0.5, "X": 0.5}
    semantic = open_image(seg / "labels").read()
    np.testing.assert_array_equal(labelled.read() > 0, semantic == 2)
    table_path = tmp_path / "objects.csv"
    assert main(["objects", "measure", str(objects), "--image", str(movie), "-o",
                 str(table_path), "-q", "--no-shape-features"]) == 0  # fmt: skip
    table = pd.read_csv(table_path)
    assert set(table["t"]) == {0, 1}
    for t in (0, 1):
        ids = np.unique(labelled.read(T=t)[labelled.read(T=t) > 0])
        assert sorted(table.loc[table["t"] == t, "label"]) == ids.tolist()
    assert "area_um2" in table and "intensity_mean_C0" in table


def test_bad_input_exits_2(tmp_path, capsys):
    table = tmp_path / "t.csv"
    pd.DataFrame({"area": [1.0]}).to_csv(table, index=False)
    assert main(["objects", "classify", str(table), str(table), "-o", str(tmp_path / "o.csv")]) == 2
    assert "not a valid object classifier" in capsys.readouterr().err
    assert main(["objects", "measure", str(tmp_path / "missing.npy"), "-o", str(table)]) == 2
    assert (
        main(
            [
                "objects",
                "train",
                str(table),
                "--class-column",
                "kind",
                "-o",
                str(tmp_path / "m.zip"),
            ]
        )
        == 2
    )
    assert "no column 'kind'" in capsys.readouterr().err


def test_label_overwrite_never_replaces_its_input(tmp_path, capsys):
    semantic = tmp_path / "semantic.tif"
    tifffile.imwrite(semantic, np.eye(16, dtype=np.uint8))
    before = semantic.read_bytes()
    assert main(["objects", "label", str(semantic), "-o", str(semantic), "--overwrite"]) == 2
    assert "holds the input" in capsys.readouterr().err
    assert semantic.read_bytes() == before


def test_a_tile_size_below_one_is_one_clear_line(tmp_path, capsys):
    labels = np.zeros((20, 20), np.uint16)
    labels[2:6, 2:6] = 1
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    for command, out in (("measure", "t.csv"), ("label", "o.ome.zarr")):
        for size in ("0", "-3"):
            args = ["objects", command, str(tmp_path / "labels.tif"), "-o", str(tmp_path / out)]
            assert main([*args, "--tile-size", size, "-q"]) == 2
            err = capsys.readouterr().err.strip()
            assert "\n" not in err and "Traceback" not in err
            assert f"tile_size must be positive; got {size}" in err, err
            assert not (tmp_path / out).exists()


def test_the_help_says_what_a_segment_store_needs(capsys):
    def shown(*command):
        assert main([*command, "--help"]) == 0
        return " ".join(capsys.readouterr().out.replace("│", " ").split())

    label = shown("objects", "label")
    assert "default: every non-zero pixel of a mask" in label  # class labels need a class
    assert "a scopeml segment store" in label and "a scopeml segment store" in shown("post")
    assert "a scopeml segment store (its instances)" in shown("objects", "measure")
