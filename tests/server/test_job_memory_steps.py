"""A job's memory after its engine: the steps that follow (instances, measure) run within the
job's address-space limit, and running out in one of them names that step, not the model.

The trial's job (``nuclei`` on a 20×700×1100 TYX image at scale 2, instances and a table, under
``--job-memory-mb 3000``) ran all its tiles and then ran out of memory in step ``measure`` at
1.7 GB resident: ONNX Runtime's arena (two 1 GB chunks) was still mapped, and Arrow's mimalloc
reserved 1 GB more as the table was written. The job's process now gives the arena back after
the engine and runs Arrow on the system allocator: the same job's ``measure`` peaked at about
1.0 GB of address space (5.1 GB before), and it finished under 3000 MB.
"""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path

import tifffile

from scopeml.model.registry import BUILTIN_MODELS
from scopeml.server._job_child import MB, _failure, run_in_child
from scopeml.server.limits import job_memory, job_step_memory
from scopeml.server.models import spec_from_dict, spec_to_dict
from scopeml.synthetic import synthetic_nuclei

OPTIONS = {"outputs": ["labels", "instances"], "scale": 1.0, "axes": "TYX", "measure": "csv"}
#: The job below (``nuclei``, one 1000² frame, instances and a table) ran out of memory in
#: ``measure`` under this limit before (3.2 GB mapped there, 0.8 GB resident); now its peak is
#: its ``segment`` step's, 1.3 GB mapped.
LIMIT_MB = 2000


def test_instances_and_measure_run_within_the_job_memory_limit(tmp_path: Path):
    image, _ = synthetic_nuclei((1000, 1000), density=0.002, seed=1)
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, image[0][None])
    steps: list[str] = []
    task = {
        "kind": "segment", "model": str(BUILTIN_MODELS["nuclei"].path), "name": "one.tif",
        "model_name": None, "time_budget": 300.0, "image": str(path), "options": OPTIONS,
        "output": str(tmp_path / "result.ome.zarr"), "table": str(tmp_path / "objects.csv"),
        "stage": str(tmp_path / "stage"), "roots": [str(tmp_path)], "max_job_pixels": 2**34,
        "max_tile_memory": 2048 * MB, "runtime_per_pixel": 0.0,
    }  # fmt: skip
    run_in_child(task, lambda done, total: None, (threading.Event(),), LIMIT_MB * MB, steps.append)
    assert steps[-2:] == ["instances", "measure"]
    with (tmp_path / "objects.csv").open() as table:
        rows = list(csv.DictReader(table))
    assert len(rows) > 100


def test_running_out_of_memory_after_the_engine_names_the_step():
    counted = {"segment": 1374 * MB, "instances": 60 * MB, "measure": 120 * MB}
    task = {"kind": "segment", "memory_limit": 3000 * MB, "batch_bytes": counted["segment"],
            "step_bytes": counted, "step": "measure"}  # fmt: skip
    problem = _failure(MemoryError(), task)[2]
    assert problem == (
        "ran out of memory in step measure (job memory limit 3000 MB): it was counted at about "
        "120 MB, besides the job's libraries and threads; ask the administrator for more "
        "--job-memory-mb, or submit without measure (no objects table)"
    )
    instances = _failure(MemoryError(), {**task, "step": "instances"})[2]
    assert instances.startswith("ran out of memory in step instances (job memory limit 3000 MB)")
    assert instances.endswith("or submit with a smaller tile_size (the step reads tiles of it)")
    segment = _failure(MemoryError(), {**task, "step": "segment"})[2]  # the batch, as before
    assert "the model needs about 1374 MB per batch" in segment


def test_each_step_is_counted_and_the_job_by_its_largest():
    spec = spec_from_dict(spec_to_dict(_nuclei_spec()))
    shape = (1, 20, 1, 1, 700, 1100)
    options = {**OPTIONS, "scale": 2.0}
    steps = job_step_memory(options, spec, 0.0, shape)
    assert set(steps) == {"segment", "instances", "measure"}
    assert job_memory(options, spec, 0.0, shape) == max(steps.values())
    assert set(job_step_memory({"scale": 2.0}, spec, 0.0, shape)) == {"segment"}


def _nuclei_spec():
    from scopeml.model import load_model

    return load_model(BUILTIN_MODELS["nuclei"].path).spec


PROBE = """
import threading
from scopeml.cli import main  # as scopeml serve's main module: pandas, so pyarrow, loaded
from scopeml.server import _job_child

def probe(task, progress):
    import pyarrow
    return pyarrow.default_memory_pool().backend_name

_job_child.RUNNERS["probe"] = probe

if __name__ == "__main__":
    stop = (threading.Event(),)
    print(_job_child.run_in_child({"kind": "probe"}, lambda d, t: None, stop, 4000 << 20))
"""


def test_a_job_child_of_scopeml_serve_writes_tables_with_the_system_allocator(tmp_path):
    """Spawned, the child imports the parent's main module first, which loaded pyarrow with
    mimalloc (1.2 GB of the job's address space) before the child could choose."""
    import subprocess
    import sys

    script = tmp_path / "serve_like.py"
    script.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env=env, check=True)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "system", done.stdout + done.stderr
