"""Benchmark of the tiling engine on large uint16 images generated on disk.

Reports, for a tiny U-Net in a ``.czann`` container:

(a) engine overhead: engine wall time / the runtime's own ``predict`` time summed over the
    same tiles (target <= 1.10), with one worker thread and with two;
(b) peak RSS of the whole run at two image sizes, each in its own subprocess (target < 1.5 GB
    and independent of image size);
(c) the executor choice on 2 cores: one shared session + N threads vs one session per thread;
(d) time against MONAI ``sliding_window_inference`` (whole image in memory, same model, same
    window and stride) where MONAI is installed. bioimageio.core is not run: it needs a
    bioimage.io model package and pulls a large dependency tree.

Run: ``python bench/bench_engine.py`` (8k and 16k; a few minutes on 2 cores) or
``python bench/bench_engine.py --sizes 2048 4096 --compare-size 2048`` for a quick look.
Images are generated chunk by chunk (never whole in memory) into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

TILE = 512
CHUNK = 1024
DEPTH, WIDTH = 2, 2


def make_image(path: Path, size: int, seed: int = 0) -> Path:
    """A ``size × size`` uint16 OME-Zarr written one 1024² chunk at a time."""
    from scopeml.io import create_ome_zarr

    array = create_ome_zarr(
        path,
        shape=(1, size, size),
        dtype="uint16",
        axes="CYX",
        chunks=(1, CHUNK, CHUNK),
        pixel_sizes={"Y": 0.2, "X": 0.2},
    )
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:CHUNK, 0:CHUNK]
    blobs = (np.sin(yy / 9.0) * np.cos(xx / 7.0) > 0.6).astype(np.uint16) * 2000
    for y in range(0, size, CHUNK):
        for x in range(0, size, CHUNK):
            h, w = min(CHUNK, size - y), min(CHUNK, size - x)
            noise = rng.integers(100, 400, (h, w), dtype=np.uint16)
            array[0, y : y + h, x : x + w] = blobs[:h, :w] + noise
    return path


def make_model(path: Path) -> Path:
    from scopeml.model import convert_onnx
    from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo

    return convert_onnx(
        tiny_unet_onnx(depth=DEPTH, width=WIDTH),
        path,
        classes=["background", "nucleus"],
        min_overlap=unet_receptive_halo(DEPTH),
        model_type="MultiClassSemanticSegmentation",
        name="bench-unet",
    )


class Timed:
    """Wraps a model; sums the wall time spent inside ``predict`` (thread-safe)."""

    def __init__(self, model):
        self.spec, self.path, self._model = model.spec, model.path, model
        self.seconds, self.calls = 0.0, 0
        self._lock = threading.Lock()

    def predict(self, batch):
        start = time.perf_counter()
        result = self._model.predict(batch)
        with self._lock:
            self.seconds += time.perf_counter() - start
            self.calls += 1
        return result


class PerThreadSessions:
    """One single-threaded onnxruntime session per worker thread (the alternative executor)."""

    def __init__(self, model_path: str):
        from scopeml.model import load_model, read_container

        self._onnx = read_container(model_path).onnx_bytes
        reference = load_model(model_path)
        self.spec, self.path = reference.spec, reference.path
        self._local = threading.local()

    def predict(self, batch):
        import onnxruntime as ort

        session = getattr(self._local, "session", None)
        if session is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            session = ort.InferenceSession(self._onnx, options, providers=["CPUExecutionProvider"])
            self._local.session = session
        (out,) = session.run(None, {"input": np.ascontiguousarray(np.moveaxis(batch, 1, -1))})
        return np.ascontiguousarray(np.moveaxis(out, -1, 1))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it is not inherited on exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """One engine run in this process; prints a JSON line with its figures."""
    from scopeml.api import open_model, segment

    base_rss = peak_rss_mb()
    if args.mode == "perthread":
        model = Timed(PerThreadSessions(args.model))
    else:
        # as scopeml.api.segment opens a model file: one runtime thread per engine worker
        model = Timed(open_model(args.model, threads=1 if args.workers > 1 else None))
    start = time.perf_counter()
    segment(
        args.image,
        model,
        args.output,
        tile_size=TILE,
        workers=args.workers,
        batch_size=args.batch_size,
    )
    wall = time.perf_counter() - start
    peak = peak_rss_mb()
    print(
        json.dumps(
            {
                "wall_s": wall,
                "predict_s": model.seconds,
                "predict_calls": model.calls,
                "peak_rss_mb": peak,
                "rss_after_imports_mb": base_rss,
            }
        )
    )


def run_child(image: Path, model: Path, output: Path, *, workers: int, mode: str, batch: int):
    command = [
        sys.executable,
        __file__,
        "--child",
        "--image",
        str(image),
        "--model",
        str(model),
        "--output",
        str(output),
        "--workers",
        str(workers),
        "--mode",
        mode,
        "--batch-size",
        str(batch),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stderr}")
    shutil.rmtree(output, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def monai_time(image: Path, model: Path) -> float | None:
    """MONAI sliding-window inference over the whole in-memory image with the same session."""
    try:
        import torch
        from monai.inferers import sliding_window_inference
    except ImportError:
        return None
    from scopeml.api import open_model
    from scopeml.io import open_image

    onnx_model = open_model(model)
    halo = onnx_model.spec.halo[0]
    pixels = open_image(image).read()[0, 0, :, 0].astype(np.float32)
    window = TILE + 2 * halo

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(onnx_model.predict(batch.numpy()))

    start = time.perf_counter()
    with torch.no_grad():
        result = sliding_window_inference(
            torch.from_numpy(pixels[None]),
            roi_size=(window, window),
            sw_batch_size=4,
            predictor=predictor,
            overlap=2 * halo / window,  # stride = TILE, as the engine's cores
            mode="constant",
        )
        labels = result[0].argmax(0).numpy().astype(np.uint8)
    elapsed = time.perf_counter() - start
    del labels
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8192, 16384])
    parser.add_argument("--compare-size", type=int, default=4096)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--image")
    parser.add_argument("--model")
    parser.add_argument("--output")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--mode", default="shared", choices=["shared", "perthread"])
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="scopeml-bench-") as folder:
        root = Path(folder)
        model = make_model(root / "bench.czann")
        print(f"model: tiny U-Net depth {DEPTH} width {WIDTH}, tiles {TILE}², halo 24")

        small = make_image(root / f"img{args.compare_size}.ome.zarr", args.compare_size)
        print(f"\n(c) executors on {args.compare_size}² (wall s; lower is better)")
        configs = [(1, "shared"), (2, "shared"), (2, "perthread")]
        timings = {}
        for workers, mode in configs:
            r = run_child(
                small, model, root / "o.ome.zarr", workers=workers, mode=mode, batch=args.batch_size
            )
            timings[(workers, mode)] = r
            print(
                f"  workers={workers} {mode:9s} wall {r['wall_s']:7.2f}  "
                f"predict-sum {r['predict_s']:7.2f}  ratio {r['wall_s'] / r['predict_s']:.3f}"
            )
        base = timings[(1, "shared")]["wall_s"]
        for key, r in timings.items():
            print(f"  speed-up vs 1 worker, {key}: {base / r['wall_s']:.2f}×")

        seconds = monai_time(small, model)
        engine = min(r["wall_s"] for r in timings.values())
        if seconds is None:
            print("\n(d) MONAI not installed: skipped")
        else:
            print(
                f"\n(d) MONAI sliding_window_inference (in memory) {seconds:.2f} s; "
                f"engine (from/to disk, best config) {engine:.2f} s; "
                f"ratio engine/MONAI {engine / seconds:.2f}"
            )
        print("    bioimageio.core: not run (needs a bioimage.io package; heavy dependencies)")
        shutil.rmtree(small)

        print("\n(a)+(b) engine on large images (shared session), each run in a subprocess")
        for size in args.sizes:
            start = time.perf_counter()
            image = make_image(root / f"img{size}.ome.zarr", size)
            made = time.perf_counter() - start
            for workers in (1, 2) if size == args.sizes[0] else (2,):
                r = run_child(
                    image,
                    model,
                    root / "o.ome.zarr",
                    workers=workers,
                    mode="shared",
                    batch=args.batch_size,
                )
                print(
                    f"  {size}² (written in {made:.0f} s) workers={workers}: "
                    f"wall {r['wall_s']:.1f} s, predict-sum {r['predict_s']:.1f} s, "
                    f"(a) wall/predict {r['wall_s'] / r['predict_s']:.3f}, "
                    f"(b) peak RSS {r['peak_rss_mb']:.0f} MB "
                    f"(at start {r['rss_after_imports_mb']:.0f} MB)"
                )
            shutil.rmtree(image)


if __name__ == "__main__":
    main()
