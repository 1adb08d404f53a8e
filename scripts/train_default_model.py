"""Train scopeml's default nuclei model, ``src/scopeml/data/nuclei.czann``, reproducibly.

Data (generated here, offline, nothing downloaded): ``N_TRAIN`` single-channel 256×256 images
from :func:`scopeml.synthetic.synthetic_nuclei`, image ``i`` drawn with seed ``1000 + i`` and
its own parameters, themselves drawn from ``numpy.random.default_rng(DATA_SEED)``:

- nucleus semi-minor radius: lower bound 3–8 px, upper bound that + 3–8 px;
- elongation up to 1.2–1.9; density 0.0006–0.0025 nuclei/px; touching clusters 0–60 %;
- uneven illumination 0–0.7, blur σ 0.5–2.0 px, noise 0.02–0.10;
- exposure: the uint16 image is multiplied by a gain in 0.5–1.5 (kept as float32).

Targets are three classes from the exact instance labels (:func:`scopeml.train.nuclei_targets`):
background, nucleus interior, and each nucleus's outer pixel ring as ``boundary``, widened to
2 px where two nuclei touch, so that touching nuclei are split (boundary weighted 3× in the
loss). Training adds flips, quarter turns and random gain/offset (``TrainConfig``).

Network: U-Net depth 3, width 8 (about 120 k weights, under 0.5 MB), zero-padded 3×3 convs,
max-pool, nearest upsampling; the training set's mean/std are baked into the graph, and the
container's ``MinOverlap`` is the receptive halo (56 px), so tiled inference is exact.

Reproducible: fixed seeds, ``torch.use_deterministic_algorithms(True)``, one CPU thread by
default (``--threads``; on a shared 2-core machine two threads spin-wait for each other and ran
30× slower than one; another thread count may change the last bits of the weights).
Training took about 15 minutes on the shared (busy) 2-core development machine.
Held-out score: object F1 (IoU ≥ 0.5) on images drawn with seeds ``EVAL_SEED + i``, printed at
the end. Run from the repository root::

    python scripts/train_default_model.py [--output src/scopeml/data/nuclei.czann]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from scopeml.synthetic import synthetic_nuclei
from scopeml.train import (
    NUCLEI_CLASSES,
    TrainConfig,
    nuclei_instances,
    nuclei_targets,
    object_scores,
    save_czann,
    train_unet,
)

MODEL_ID = "5c0e3d1a-7b2f-4f6e-9a41-2d8c6b1e0f57"  # fixed, so that a rerun writes the same file
N_TRAIN = 40
DATA_SEED = 7
EVAL_SEED = 90_000
SHAPE = (256, 256)
CONFIG = TrainConfig(
    depth=3,
    width=8,
    patch_size=96,
    batch_size=8,
    epochs=40,
    steps_per_epoch=50,
    lr=2e-3,
    val_fraction=0.1,
    patience=8,
    seed=0,
    intensity=0.3,
    class_weights=(1.0, 1.0, 3.0),
)


def draw_image(seed: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One varied synthetic nuclei image (``1×Y×X`` float32) and its instance labels."""
    low = rng.uniform(3, 8)
    image, instances = synthetic_nuclei(
        SHAPE,
        density=rng.uniform(0.0006, 0.0025),
        radius=(low, low + rng.uniform(3, 8)),
        elongation=(1.0, rng.uniform(1.2, 1.9)),
        cluster_fraction=rng.uniform(0.0, 0.6),
        illumination=rng.uniform(0.0, 0.7),
        blur=rng.uniform(0.5, 2.0),
        noise=rng.uniform(0.02, 0.10),
        seed=seed,
    )
    return image.astype(np.float32) * np.float32(rng.uniform(0.5, 1.5)), instances


def dataset(n: int, first_seed: int, data_seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(data_seed)
    return [draw_image(first_seed + i, rng) for i in range(n)]


def evaluate(classifier: torch.nn.Module, n: int = 8) -> dict[str, float]:
    """Object-level scores on ``n`` held-out images (other seeds, same parameter ranges)."""
    matched = predicted = true = 0
    for image, instances in dataset(n, EVAL_SEED, DATA_SEED + 1):
        with torch.no_grad():
            probabilities = classifier(torch.from_numpy(image[..., None]))[0].numpy()
        scores = object_scores(nuclei_instances(np.moveaxis(probabilities, -1, 0)), instances)
        matched += scores["matched"]
        predicted += scores["predicted"]
        true += scores["true"]
    return {"f1": 2 * matched / (predicted + true), "matched": matched, "predicted": predicted,
            "true": true}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("src/scopeml/data/nuclei.czann"))
    parser.add_argument("--checkpoint", type=Path, default=Path("nuclei-checkpoint.pt"))
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    pairs = dataset(N_TRAIN, 1000, DATA_SEED)
    images = [image for image, _ in pairs]
    labels = [nuclei_targets(instances) for _, instances in pairs]
    result = train_unet(
        images,
        labels,
        CONFIG,
        classes=NUCLEI_CLASSES,
        checkpoint=args.checkpoint,
        resume=args.checkpoint if args.resume else None,
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    classifier = result.classifier()
    path = save_czann(
        classifier,
        args.output,
        classes=NUCLEI_CLASSES,
        model_name="scopeml nuclei",
        model_id=MODEL_ID,
    )
    report = {
        "train_seconds": round(seconds, 1),
        "epochs": len(result.history),
        "last": result.history[-1],
        "size_bytes": path.stat().st_size,
        "held_out": evaluate(classifier),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
