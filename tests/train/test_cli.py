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


def test_checkpoint_never_replaces_an_input_and_garbage_resume_is_an_error(tmp_path, capsys):
    image, labels = tmp_path / "image.npy", tmp_path / "labels.npy"
    np.save(image, np.zeros((32, 32), np.float32))
    np.save(labels, np.tri(32, dtype=np.uint8))
    before = image.read_bytes()
    base = ["train", "unet", str(image), str(labels), "-o", str(tmp_path / "m.czann"), "-q",
            "--depth", "1", "--patch-size", "16", "--epochs", "1"]  # fmt: skip
    assert main([*base, "--checkpoint", str(image)]) == 2
    assert "would replace the input" in capsys.readouterr().err
    assert image.read_bytes() == before
    assert main([*base, "--checkpoint", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    garbage = tmp_path / "run.pt"
    garbage.write_bytes(b"PK\x03\x04 not a checkpoint")
    assert main([*base, "--resume", str(garbage)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {garbage}: not a valid zip") and err.count("\n") == 1


def test_a_pickle_passed_as_checkpoint_is_never_unpickled(tmp_path, capsys):
    import pickle

    image, labels = tmp_path / "image.npy", tmp_path / "labels.npy"
    np.save(image, np.zeros((32, 32), np.float32))
    np.save(labels, np.tri(32, dtype=np.uint8))
    marker = tmp_path / "ran"
    # a torch.save-style zip whose pickle would create a file if it were ever unpickled
    evil = tmp_path / "evil.pt"
    import zipfile

    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(_Touch(str(marker))))
    args = [str(image), str(labels), "-o", str(tmp_path / "m.czann"), "-q", "--depth", "1",
            "--patch-size", "16", "--epochs", "1", "--resume", str(evil)]  # fmt: skip
    assert main(["train", "unet", *args]) == 2
    assert "not a scopeml checkpoint" in capsys.readouterr().err
    assert not marker.exists()


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _tiny_run(nuclei_pair, tmp_path) -> list[str]:
    """``train unet`` on the pair saved as .npy: one epoch of two steps, a checkpoint (run
    again: ``--overwrite``)."""
    image, labels = nuclei_pair
    np.save(tmp_path / "image.npy", image[0])
    np.save(tmp_path / "labels.npy", labels)
    return ["train", "unet", str(tmp_path / "image.npy"), str(tmp_path / "labels.npy"),
            "-o", str(tmp_path / "m.czann"), "--epochs", "1", "--steps-per-epoch", "2",
            "--depth", "1", "--width", "4", "--patch-size", "16", "--batch-size", "2",
            "--checkpoint", str(tmp_path / "c.pt"), "--quiet", "--overwrite"]  # fmt: skip


def test_train_unet_ema_option(nuclei_pair, tmp_path, capsys) -> None:
    """``--ema`` trains with a weight average, kept in the checkpoint; out of range is exit 2."""
    from scopeml.train.checkpoint import load_checkpoint

    args = _tiny_run(nuclei_pair, tmp_path)
    assert main([*args, "--ema", "0.9"]) == 0
    saved = load_checkpoint(tmp_path / "c.pt")
    assert saved["config"]["ema"] == 0.9 and int(saved["average"]["n_averaged"]) == 2
    assert main([*args, "--ema", "1.5"]) == 2
    assert "ema must be in [0, 1)" in capsys.readouterr().err


def test_train_unet_batch_norm_option(nuclei_pair, tmp_path, capsys) -> None:
    """``--batch-norm`` trains with BatchNorm, recorded in the checkpoint; a batch too small
    for its statistics is exit 2 with one line."""
    from scopeml.train.checkpoint import load_checkpoint

    args = _tiny_run(nuclei_pair, tmp_path)
    assert main([*args, "--batch-norm"]) == 0
    saved = load_checkpoint(tmp_path / "c.pt")
    assert saved["config"]["batch_norm"] is True
    assert any(key.endswith("running_mean") for key in saved["net"])
    small = ["--patch-size", "2", "--batch-size", "1", "--batch-norm"]
    assert main([*args, *small]) == 2
    assert "batch_norm needs batch_size 2" in capsys.readouterr().err


def test_train_unet_init_and_warmup_options(nuclei_pair, tmp_path, capsys) -> None:
    """``--init he --warmup N`` are recorded in the checkpoint, and the first epoch runs at
    1/(N+1) of the rate; an unknown draw is exit 2 with one line."""
    from scopeml.train.checkpoint import load_checkpoint

    args = _tiny_run(nuclei_pair, tmp_path)
    assert main([*args, "--init", "he", "--warmup", "3", "--lr", "0.004"]) == 0
    saved = load_checkpoint(tmp_path / "c.pt")
    assert saved["config"]["init"] == "he" and saved["config"]["warmup"] == 3
    assert saved["optimizer"]["param_groups"][0]["lr"] == 0.001
    assert main([*args, "--init", "xavier"]) == 2
    assert "init must be 'torch' or 'he'" in capsys.readouterr().err


def test_train_unet_refuses_an_existing_output_before_training(nuclei_pair, tmp_path, capsys):
    """An existing model is not replaced without ``--overwrite``, and the refusal comes before
    any training (no checkpoint is written); a folder is refused the same way."""
    args = [a for a in _tiny_run(nuclei_pair, tmp_path) if a != "--overwrite"]
    output = tmp_path / "m.czann"
    output.write_bytes(b"someone's model")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "m.czann: output exists; pass --overwrite" in err and err.count("\n") == 1
    assert output.read_bytes() == b"someone's model" and not (tmp_path / "c.pt").exists()
    output.unlink()
    output.mkdir()
    assert main(args) == 2
    assert "m.czann: is a folder; expected a file name" in capsys.readouterr().err
    assert not (tmp_path / "c.pt").exists()


def test_a_model_file_that_appears_while_training_is_kept_and_the_run_saved_beside(
    nuclei_pair, tmp_path, capsys, monkeypatch
):
    """Checked before training, the output may still appear while it trains (a second run
    with the same -o): that file is kept and the hours of training are not lost."""
    import scopeml.train.loop as loop

    real = loop.train_unet

    def other_run_finishes_first(*args, **kwargs):
        (tmp_path / "m.czann").write_bytes(b"the other run's model")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_unet", other_run_finishes_first)
    args = [a for a in _tiny_run(nuclei_pair, tmp_path) if a != "--overwrite"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "m.czann: appeared while the network trained and is kept; the trained model is" in err
    assert (tmp_path / "m.czann").read_bytes() == b"the other run's model"
    assert load_model(tmp_path / "m.1.czann").spec.classes  # the run's model, beside it
