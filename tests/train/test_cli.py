from __future__ import annotations

import numpy as np

from scopeml.cli import main
from scopeml.model import load_model


def test_train_unet_command(nuclei_pair, tmp_path, capsys) -> None:
    image, labels = nuclei_pair
    np.save(tmp_path / "image.npy", image[0])
    np.save(tmp_path / "labels.npy", labels)
    output = tmp_path / "model.czann"
    checkpoint = tmp_path / "run.pt"
    args = [str(tmp_path / "image.npy"), str(tmp_path / "labels.npy"), "-o", str(output),
            "--epochs", "2", "--steps-per-epoch", "3", "--depth", "1", "--width", "4",
            "--patch-size", "16", "--batch-size", "2", "--val-fraction", "0.3", "--cosine",
            "--classes", "background,nucleus", "--checkpoint", str(checkpoint),
            "--quiet"]  # fmt: skip
    assert main(["train", "unet", *args]) == 0
    assert "wrote" in capsys.readouterr().out
    model = load_model(output)
    assert model.spec.classes == ("background", "nucleus") and model.spec.halo == (10, 10)
    assert model.predict(image[None, :, :32, :32]).shape == (1, 2, 32, 32)
    # resuming a finished run trains no further and writes the same model
    resumed = tmp_path / "again.czann"
    args[3] = str(resumed)
    assert main(["train", "unet", *args, "--resume", str(checkpoint)]) == 0
    np.testing.assert_array_equal(
        load_model(resumed).predict(image[None]), model.predict(image[None])
    )


def test_train_unet_bad_input(tmp_path, capsys) -> None:
    np.save(tmp_path / "image.npy", np.zeros((32, 32), np.float32))
    np.save(tmp_path / "labels.npy", np.full((32, 32), 5, np.uint8))
    code = main(["train", "unet", str(tmp_path / "image.npy"), str(tmp_path / "labels.npy"),
                 "-o", str(tmp_path / "m.czann"), "--classes", "a,b", "--quiet"])  # fmt: skip
    assert code == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "m.czann").exists()
    code = main(["train", "unet", str(tmp_path / "nope.npy"), str(tmp_path / "labels.npy"),
                 "-o", str(tmp_path / "m.czann")])  # fmt: skip
    assert code == 2
    assert "nope.npy" in capsys.readouterr().err
