"""Settings: built as objects, saved as YAML and read back equal; errors name file, line, key."""

from __future__ import annotations

from pathlib import Path

import pytest

from scopeml.analysis import (
    AnalysisSettings,
    ClassSettings,
    InstancesSegmenter,
    InvalidSettingsError,
    ModelSegmenter,
    ThresholdSegmenter,
    load_settings,
    parse_settings,
    save_settings,
)
from scopeml.analysis.example import EXAMPLE_SETTINGS
from scopeml.analysis.settings import (
    Closing,
    Crf,
    FillHoles,
    Measurements,
    Opening,
    Outputs,
    RemoveLarge,
    RemoveSmall,
    WatershedSplit,
    dump_settings,
)
from scopeml.cli import main
from tests.analysis.conftest import three_level_settings


def full_settings() -> AnalysisSettings:
    """Every segmenter kind and every post step."""
    return AnalysisSettings(
        channels=["DAPI", "GFP"],
        tile_size=256,
        outputs=Outputs(parquet=False, overview=False),
        classes=[
            ClassSettings(
                name="cell",
                segmenter=ThresholdSegmenter(channel="GFP", method="triangle", sigma=2.0),
                post=[
                    Closing(radius=2),
                    Opening(radius=1),
                    FillHoles(),
                    Crf(iterations=3),
                    WatershedSplit(min_distance=7),
                ],
            ),
            ClassSettings(
                name="nucleus",
                parent="cell",
                segmenter=InstancesSegmenter.model_validate(
                    {
                        "model": "nuclei",
                        "class": "nucleus",
                        "boundary_class": "boundary",
                        "channels": ["DAPI"],
                        "min_confidence": 0.5,
                    }
                ),
                post=[RemoveSmall(min_size=10), RemoveLarge(max_size=5000)],
                measurements=Measurements(shape=False, intensity=["DAPI"]),
                classifier="nuclei.objects",
            ),
            ClassSettings(
                name="mito",
                segmenter=ModelSegmenter.model_validate(
                    {"model": "m.czann", "class": 2, "channels": ["GFP"]}
                ),
            ),
        ],
    )


@pytest.mark.parametrize("settings", [full_settings(), three_level_settings()])
def test_settings_round_trip_through_yaml(settings: AnalysisSettings, tmp_path: Path) -> None:
    path = save_settings(settings, tmp_path / "s.yaml")
    again = load_settings(path)
    assert again == settings
    assert again.model_dump() == settings.model_dump()
    if settings.classes[1].segmenter.kind == "instances":  # the YAML key, not the field name
        assert "class: nucleus" in path.read_text()


def test_classes_are_ordered_parents_first() -> None:
    settings = three_level_settings()
    reordered = settings.model_copy(update={"classes": settings.classes[::-1]})
    assert [c.name for c in reordered.ordered()] == ["cell", "nucleus", "spot"]
    assert [c.name for c in settings.children("cell")] == ["nucleus"]


def test_init_writes_a_commented_example_that_validates(tmp_path: Path) -> None:
    target = tmp_path / "analysis.yaml"
    assert main(["analyze", "init", str(target)]) == 0
    text = target.read_text()
    assert text == EXAMPLE_SETTINGS and text.count("#") > 10
    settings = load_settings(target)
    assert [c.name for c in settings.ordered()] == ["cell", "nucleus", "spot", "cytoplasm"]
    assert main(["analyze", "init", str(target)]) == 2  # never overwrites
    other = tmp_path / "sub.yaml"  # -o names the file too, as a user may take it to
    assert main(["analyze", "init", "-o", str(other)]) == 0 and other.read_text() == text
    assert main(["analyze", "init", str(target), "-o", str(other)]) == 2  # two names: which?


def _line_of(text: str, needle: str) -> int:
    """The last line holding ``needle`` (a duplicate is reported where it repeats)."""
    return [i for i, line in enumerate(text.splitlines(), 1) if needle in line][-1]


@pytest.mark.parametrize(
    ("old", "new", "needle", "key", "problem"),
    [
        ("method: li", "method: lee", "method: lee", "classes[1].segmenter.method",
         "'fixed', 'otsu', 'li' or 'triangle'"),
        ("      sigma: 1.0\n", "      sigma: 1.0\n      colour: red\n", "colour: red",
         "classes[1].segmenter.colour", "unknown key 'colour'"),
        ("    parent: cell\n", "    parent: spot\n", "parent: spot", "classes[1].parent",
         "cycle: nucleus → spot → nucleus"),
        ("  - name: spot", "  - name: cell", "name: cell", "classes[2].name",
         "duplicate class name 'cell'"),
        ("      intensity: [C0]\n", "      intensity: [RFP]\n", "intensity: [RFP]",
         "classes[1].measurements.intensity[0]", "channel 'RFP' is not an input channel"),
        ("        min_size: 30", "        min_size: -3", "min_size: -3",
         "classes[1].post[1].min_size", "greater than or equal to 1"),
        ("    parent: nucleus\n", "    parent: nucleolus\n", "parent: nucleolus",
         "classes[2].parent", "'nucleolus' is not a class"),
        ("tile_size: 1024", "tile_size: 1024\nthreads: 4", "threads: 4", "threads",
         "unknown key 'threads'"),
        ("        min_size: 30", "        minsize: 30", "minsize: 30", "classes[1].post[1].minsize",
         "unknown key 'minsize' (did you mean 'min_size'?)"),
        ("      sigma: 2.0 ", "      sigm: 2.0 ", "sigm: 2.0", "classes[0].segmenter.sigm",
         "unknown key 'sigm' (did you mean 'sigma'?)"),
        ("memory_mb: 512", "memory: 512", "memory: 512", "memory",
         "unknown key 'memory' (did you mean 'memory_mb'?)"),
    ],
)  # fmt: skip
def test_errors_name_the_file_line_and_key(
    tmp_path: Path, old: str, new: str, needle: str, key: str, problem: str
) -> None:
    assert old in EXAMPLE_SETTINGS
    text = EXAMPLE_SETTINGS.replace(old, new, 1)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InvalidSettingsError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line {_line_of(text, needle)}: {key}: "), message
    assert problem in message
    assert "\n" not in message


@pytest.mark.parametrize("value", ["0", "9", "big", "true"])
def test_a_models_scale_is_said_once_in_the_settings_words(value: str) -> None:
    """It said ``classes[0].segmenter.scale.constrained-float: Input should be greater …``."""
    text = ("version: 1\nchannels: [a]\nclasses:\n  - name: x\n    segmenter: {kind: model, "
            f"model: nuclei, class: nucleus, channels: [a], scale: {value}}}\n")  # fmt: skip
    with pytest.raises(InvalidSettingsError) as caught:
        parse_settings(text, path="s.yaml")
    assert str(caught.value).startswith(
        "s.yaml: line 5: classes[0].segmenter.scale: scale must be a number from 0.125 to 8 or "
        "'auto', not "
    )
    for fine, read in (("AUTO", "auto"), ("0.5", 0.5)):
        settings = parse_settings(text.replace(f"scale: {value}", f"scale: {fine}"))
        assert settings.classes[0].segmenter.scale == read


def test_missing_key_named_at_its_mapping() -> None:
    text = "version: 1\nchannels: [a]\nclasses:\n  - name: x\n    segmenter:\n"
    text += "      kind: threshold\n"
    with pytest.raises(InvalidSettingsError) as caught:
        parse_settings(text, path="s.yaml")
    assert str(caught.value) == "s.yaml: line 5: classes[0].segmenter.channel: Field required"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 2\nchannels: [a]\n", "line 1: version: 2 is not a settings version"),
        (
            'version: "1"\nchannels: [a]\n',
            "line 1: version: '1' is not a settings version this scopeml reads (it reads 1); "
            "write the number, unquoted: version: 1",
        ),
        (
            "version: 1\nchannels: [a]\nclasses:\n  - name: nu cleus\n"
            "    segmenter: {kind: threshold, channel: a}\n",  # no regex in the line
            "line 4: classes[0].name: 'nu cleus': a name is ASCII letters (A-Z, a-z), digits, "
            "_, . and - (first",
        ),
        ("channels: [a]\n", "line 1: no version: key (a settings file starts with version: 1)"),
        (
            '{"settings": "version: 1"}',
            "line 1: no version: key (a settings file starts with "
            "version: 1); send the settings file itself, not JSON around it",
        ),
        ("version: 1\nchannels: [a\n", "line 3: not valid YAML"),
        (
            "\x00\x01binary",
            "not valid YAML: unacceptable character #x0000: special characters are not allowed",
        ),  # one line, not the reader's second ("in <unicode string>")
        (
            "version: 1\nchannels: [a]\nclasses:\n  - name: " + "x" * 65 + "\n"
            "    segmenter: {kind: threshold, channel: a}\n",  # a file name too long, at run
            "line 4: classes[0].name: String should have at most 64 characters",
        ),
        (
            "version: 1\npixel_size: 1,25\nchannels: [a]\nclasses:\n  - name: x\n"
            "    segmenter: {kind: threshold, channel: a}\n",  # a decimal comma, not Y 1, X 25
            "line 2: pixel_size: reads '1,25' as Y 1 µm, X 25 µm",
        ),
        (
            "version: 1\npixel_size: 0.5\nchannels: [a]\npixel_size: 0.65\n",
            "line 4: 'pixel_size' is given twice (first on line 2)",
        ),
        ("- just\n- a list\n", "line 1: expected a mapping"),
        (  # the README's class snippet saved alone
            "- name: nucleus\n  segmenter: {kind: instances, model: nuclei}\n",
            "line 1: expected a mapping of settings; this is a list of 1 class: put it under "
            "classes:, after version: 1 and channels: [...]",
        ),
        (
            "version: 1\nchannels: [a]\nclasses:\n  - name: x\n    segmenter: {kind: threshold, "
            "channel: a, method: fixed}\n",
            "line 5: classes[0].segmenter: 'value' is required",
        ),
    ],
)
def test_malformed_files(text: str, expected: str) -> None:
    with pytest.raises(InvalidSettingsError) as caught:
        parse_settings(text, path="s.yaml")
    assert str(caught.value).startswith(f"s.yaml: {expected}"), str(caught.value)
    assert "\n" not in str(caught.value)


def test_untrusted_yaml_is_bounded() -> None:
    bomb = "version: 1\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a]\n"
    with pytest.raises(InvalidSettingsError, match="line 3: YAML aliases"):
        parse_settings(bomb, path="s.yaml")
    deep = "version: 1\nx: " + "[" * 1000 + "]" * 1000 + "\n"  # RecursionError, unbounded
    with pytest.raises(InvalidSettingsError, match="line 2: nested more than 64 levels deep"):
        parse_settings(deep, path="s.yaml")
    with pytest.raises(InvalidSettingsError, match="larger than"):
        parse_settings("version: 1\n" + "#" * (1 << 20), path="s.yaml")
    with pytest.raises(InvalidSettingsError, match="not valid YAML"):
        parse_settings("version: 1\nx: !!python/object/apply:os.system ['true']\n", path="s.yaml")
    huge = "version: 1\ntile_size: " + "9" * 4400 + "\n"  # int() refuses 4300+ digits: a 500
    with pytest.raises(InvalidSettingsError, match="line 2: a number of 4400 digits"):
        parse_settings(huge, path="s.yaml")


def test_thousands_of_classes_are_refused_at_once() -> None:
    """A 127 KB file of 2000 ``instances`` classes held a server's submit for 36 s, then
    failed with an out-of-memory hint: refused in one line, as it is read."""
    classes = "".join(f"  - name: c{i}\n    segmenter: {{kind: instances, model: nuclei}}\n"
                      for i in range(2000))  # fmt: skip
    text = f"version: 1\nchannels: [DNA]\nclasses:\n{classes}"
    with pytest.raises(InvalidSettingsError) as caught:
        parse_settings(text, path="s.yaml")
    assert str(caught.value) == (
        "s.yaml: line 3: classes: 2000 classes; one analysis has at most 100 (each is a "
        "segmentation, a table and a label store per image)"
    )
    hundred = "".join(f"  - name: c{i}\n    segmenter: {{kind: threshold, channel: DNA}}\n"
                      for i in range(100))  # fmt: skip
    assert len(parse_settings(f"version: 1\nchannels: [DNA]\nclasses:\n{hundred}").classes) == 100


INSTANCES = """\
version: 1
channels: [DAPI]
classes:
  - name: nucleus
    segmenter:
      kind: instances
      model: nuclei
      class: nucleus
      boundary_class: boundary
      channels: [DAPI]
"""


def test_instance_options_are_settings_and_older_files_still_read() -> None:
    from scopeml.objects.instances import InstanceOptions

    older = parse_settings(INSTANCES)  # written before the options existed: segment's defaults
    assert older.classes[0].segmenter.instance_options() == InstanceOptions(
        class_="nucleus", boundary_class="boundary"
    )
    text = INSTANCES + "      seed_threshold: null\n      grow: 2.5\n      min_size: 20\n"
    options = parse_settings(text).classes[0].segmenter.instance_options()
    assert (options.seed_threshold, options.grow, options.min_size) == (None, 2.5, 20)
    assert parse_settings(dump_settings(parse_settings(text))) == parse_settings(text)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            "seed_threshold: 1.5",
            "line 11: classes[0].segmenter.seed_threshold: Input should be less",
        ),
        ("grow: -1", "line 11: classes[0].segmenter.grow: Input should be greater than or equal"),
        ("min_size: 2.5", "line 11: classes[0].segmenter.min_size: Input should be a valid int"),
        (
            "sed_threshold: 0.5",
            "line 11: classes[0].segmenter.sed_threshold: unknown key "
            "'sed_threshold' (did you mean 'seed_threshold'?)",
        ),
    ],
)
def test_bad_instance_options_name_their_key(extra: str, problem: str) -> None:
    with pytest.raises(InvalidSettingsError) as caught:
        parse_settings(INSTANCES + f"      {extra}\n", path="s.yaml")
    assert str(caught.value).startswith(f"s.yaml: {problem}"), str(caught.value)


@pytest.mark.parametrize("measured", ["", "\n    measurements: {intensity: []}"])
def test_a_channel_listed_twice_is_said_so(measured: str) -> None:
    """``channels: [C0, C0]`` said "channel 'C0' is measured twice in class 'n'" of a class
    that measures nothing, and with ``intensity: []`` passed, every image then failing."""
    text = ("version: 1\nchannels: [C0, C0]\nclasses:\n  - name: n\n    segmenter: {kind: "
            f"threshold, channel: C0, method: otsu}}{measured}\n")  # fmt: skip
    with pytest.raises(InvalidSettingsError) as caught:
        parse_settings(text, path="s.yaml")
    assert str(caught.value) == "s.yaml: line 2: channels[1]: channel 'C0' is listed twice"


def test_settings_in_python_may_use_one_dict_twice_and_not_one_that_holds_itself() -> None:
    segmenter = {"kind": "threshold", "channel": "DAPI"}  # one dict for two classes
    blob = {"version": 1, "channels": ["DAPI"], "classes": [
        {"name": "a", "segmenter": segmenter}, {"name": "b", "segmenter": segmenter}]}  # fmt: skip
    assert [c.name for c in parse_settings(blob).classes] == ["a", "b"]
    blob["classes"].append(blob)
    with pytest.raises(InvalidSettingsError, match="a dict or list that holds itself"):
        parse_settings(blob)
