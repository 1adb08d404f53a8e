"""Whether a result store already holds what ``segment`` would write, and if not, why not.

A store that ``scopeml segment`` (or another session) wrote can be reused instead of running the
model again — by the napari plugin's *instances without rerun* — only when it is this exact run.
The check is the library's own resume check after the same preparation as ``segment``'s, so
the plugin holds no copy of ``segment``'s set-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import scopeml as sm
from scopeml.errors import ScopeMLError

__all__ = ["why_not_this_run"]


def why_not_this_run(image: Any, model: Any, store: Path, options: dict) -> str | None:
    """``None`` when ``store`` is the finished store of ``sm.segment(image, model, ...,
    **options)`` (its labels are this run's: the same image file and content, model, scene,
    channels, scale and engine settings, and normalisation, as a resume checks them, whatever
    else it holds), else why not, in a few words (``"records model 'x', not 'y'"``).

    The library's own check (:func:`~scopeml.tiling.engine.is_finished_run`) after the same
    preparation as ``segment``'s (channels by name, the scale, the recorded automatic scale);
    the store's other outputs and instances are taken as recorded, since only its labels are
    used."""
    import json
    import warnings

    from scopeml import api
    from scopeml.tiling.engine import _identity, is_finished_run
    from scopeml.tiling.size import AUTO_RECORD
    from scopeml.tiling.store import recorded_run

    recorded = recorded_run(store)
    outputs = (recorded or {}).get("options", {}).get("outputs") or []
    if not isinstance(recorded, dict) or "labels" not in outputs:
        return "holds no labels of a segment run"
    missing = [name for name in options["outputs"] if name not in outputs]
    if missing:
        return f"holds no {', '.join(missing)}"
    given = {key: None for key in ("outputs", "halo", "batch_size", "workers", "scheduler")}
    given.update({key: None for key in ("min_confidence", "extract_class", "blend", "normalize")})
    given.update(probability_dtype=None, ome_tiff=None, overwrite=None)
    given.update({key: options.get(key) for key in ("tile_size", "scene", "channels", "scale")})
    given.update(resume=True, outputs=("labels",))  # resume: the recorded automatic scale
    given["channels"] = api.names_of(given["channels"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            settings = api._settings(None, given, False)
            opened, image_ref = api._input_image(image, settings, options.get("axes"))
            try:
                pixel_model, model_ref = api._pixel_model(model, settings)
                opened, image_ref, pixel_model, model_ref, settings, auto = api._fitted(
                    image, opened, image_ref, pixel_model, model_ref, settings,
                    options.get("axes"), store,
                )  # fmt: skip
                record = {"outputs": outputs}
                record.update({k: v for k, v in recorded.items() if k == api.INSTANCES})
                if auto is not None:
                    record[AUTO_RECORD] = auto.to_dict()
                record = api._read_as(record, image_ref, {}, opened)  # as segment records it
                run = {"model_ref": model_ref, "record": record}
                if is_finished_run(opened, pixel_model, store, settings, **run):
                    return None
                _, early = _identity(opened, pixel_model, settings, None, **run, statistics=False)
            finally:
                if not isinstance(image, sm.Image):
                    opened.close()
    except Exception as err:  # the run itself says what is wrong with its inputs
        text = str(err) if isinstance(err, ScopeMLError) else f"{type(err).__name__}: {err}"
        return f"cannot be checked ({text})"
    return _difference(recorded, json.loads(json.dumps(early)))


def _difference(recorded: dict[str, Any], expected: dict[str, Any]) -> str:
    """What differs between a store's run record and this run's, in a few words."""
    model, want = recorded.get("model") or {}, expected["model"]
    if model.get("sha256") != want.get("sha256") or model.get("classes") != want["classes"]:
        if model.get("name") != want.get("name"):
            return f"records model {model.get('name')!r}, not {want.get('name')!r}"
        if model.get("sha256") is None:  # a model object without its file: cannot be told
            return f"records model {model.get('name')!r} without its file's checksum"
        return f"records another model of the name {model.get('name')!r} (another file)"
    image, want = recorded.get("image") or {}, expected["image"]
    if image.get("path") != want.get("path"):
        return f"records image {Path(str(image.get('path'))).name}"
    if image != want and image.get("content") == want.get("content"):  # the file, read so
        return (
            f"records the file read as {_planes(image.get('shape'))}, not {_planes(want['shape'])}"
        )
    if image != want:
        return "records the image as it was before it changed"
    options, want = recorded.get("options") or {}, expected["options"]
    keys = sorted(
        k for k in set(options) | set(want) if k != "outputs" and options.get(k) != want.get(k)
    )
    if keys:
        shown = "; ".join(f"{k} {_value(options.get(k))}, not {_value(want.get(k))}" for k in keys)
        return f"records other settings ({shown})"
    others = sorted(
        k
        for k in set(recorded) | set(expected)
        if recorded.get(k) != expected.get(k) and k != "options"
    )
    return f"records another run ({', '.join(others) or 'its normalisation'})"


def _value(value: Any) -> str:
    """A recorded option as the user sets it: ``None`` is the default (``scale`` the model's,
    ``tile_size`` the engine's).

    Examples
    --------
    >>> _value(None), _value(0.5), _value(["DAPI"])
    ('the default', '0.5', 'DAPI')
    """
    if value is None:
        return "the default"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _planes(shape: Any) -> str:
    """How a recorded ``S T C Z Y X`` shape reads a file, in the axes it found beyond Y×X.

    Examples
    --------
    >>> _planes([1, 1, 1, 3, 64, 64]), _planes([1, 3, 1, 1, 64, 64]), _planes([1, 1, 1, 1, 8, 8])
    ('3 Z planes', '3 time points', 'one plane')
    """
    if not isinstance(shape, list) or len(shape) != 6:
        return "another shape"
    words = ("scenes", "time points", "channels", "Z planes")
    found = [f"{n} {word}" for n, word in zip(shape[:4], words, strict=True) if n > 1]
    return " × ".join(found) or "one plane"
