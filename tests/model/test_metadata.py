"""czann JSON and legacy XML metadata: validation, round trips, czmodel's own serialisation."""

from __future__ import annotations

import uuid

import pytest
from czmodel.core.legacy_model_metadata import ModelMetadata as CzLegacyMetadata
from czmodel.core.model_metadata import ModelMetadata as CzMetadata
from czmodel.core.model_metadata import ModelType as CzModelType

from scopeml.errors import InvalidContainerError, InvalidRequestError
from scopeml.model import LegacyModelMetadata, ModelMetadata, ModelType
from scopeml.model.metadata import validate_metadata
from tests.model.model_builders import MODEL_ID, unet_metadata


def valid_json() -> dict:
    return unet_metadata(scaling=(2e-7, 3e-7)).to_json_dict()


def test_model_type_values_are_czmodels():
    assert {item.value for item in ModelType} == {item.value for item in CzModelType}


def test_json_round_trip_uses_the_czann_keys():
    data = valid_json()
    assert data == {
        "FormatVersion": "2.1.0",
        "Id": MODEL_ID,
        "Type": "MultiClassSemanticSegmentation",
        "InputShape": [64, 64, 1],
        "OutputShape": [64, 64, 2],
        "MinOverlap": [24, 24],
        "Classes": ["c0", "c1"],
        "ModelName": "tiny",
        "Scaling": [2e-7, 3e-7],
    }
    assert ModelMetadata.from_json_dict(data).to_json_dict() == data


def test_reads_czmodels_json_identically():
    cz = CzMetadata(
        model_type=CzModelType.SINGLE_CLASS_SEMANTIC_SEGMENTATION,
        input_shape=[32, 128, 128, 2],
        output_shape=[32, 128, 128, 3],
        classes=["a", "b", "c"],
        model_name="three-d",
        min_overlap=[4, 16, 16],
        scaling=(1e-7, 1e-7, 5e-7),
    )
    ours = ModelMetadata.from_json_dict(cz.to_czann_dict())
    assert ours.to_json_dict() == {**cz.to_czann_dict(), "Scaling": [1e-7, 1e-7, 5e-7]}
    assert ours.spatial_dims == 3 and ours.in_channels == 2
    assert str(ours.model_id) == cz.model_id


def test_unknown_keys_are_kept():
    data = {**valid_json(), "Vendor": {"x": 1}}
    assert ModelMetadata.from_json_dict(data).to_json_dict()["Vendor"] == {"x": 1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Classes": ["only-one"]}, "Classes has 1 names; the output has 2 channels"),
        ({"MinOverlap": [-2, 4]}, ">= 0"),
        ({"MinOverlap": [4, 4, 4]}, "MinOverlap has 3 entries"),
        ({"InputShape": [64, 1]}, "InputShape"),
        ({"InputShape": [64, 0, 1]}, ">= 1"),
        ({"InputShape": [64, "64", 1]}, "InputShape"),
        ({"InputShape": [64, True, 1]}, "InputShape"),
        ({"OutputShape": [2]}, "rank of InputShape"),
        ({"Id": "not-a-uuid"}, "Id"),
        ({"Type": "Magic"}, "Type"),
        ({"Scaling": [0.0, 1e-7]}, "positive"),
        ({"Classes": "ab"}, "Classes"),
        ({"Type": None}, "Type"),
    ],
)
def test_invalid_metadata_is_refused_with_the_field_named(change, message):
    with pytest.raises(InvalidContainerError, match=message) as caught:
        ModelMetadata.from_json_dict({**valid_json(), **change}, path="m.czann")
    assert str(caught.value).startswith("m.czann: invalid model.json")


@pytest.mark.parametrize("key", ["Type", "InputShape", "OutputShape"])
def test_required_keys(key):
    data = valid_json()
    del data[key]
    with pytest.raises(InvalidContainerError, match=key):
        ModelMetadata.from_json_dict(data)


def test_a_missing_id_gets_a_fresh_uuid_and_json_must_be_an_object():
    data = valid_json()
    del data["Id"]
    assert isinstance(ModelMetadata.from_json_dict(data).model_id, uuid.UUID)
    with pytest.raises(InvalidContainerError, match="JSON object"):
        ModelMetadata.from_json_dict([1, 2])


def test_classification_models_may_have_a_flat_output():
    meta = ModelMetadata(
        model_type=ModelType.MULTI_CLASS_CLASSIFICATION,
        input_shape=(64, 64, 1),
        output_shape=(3,),
        classes=("a", "b", "c"),
    )
    assert not meta.model_type.is_pixelwise and meta.out_channels == 3


def test_legacy_xml_round_trip_and_czmodels_xml():
    ours = LegacyModelMetadata(
        model_id=MODEL_ID, name="nuclei", classes=("bg", "fg"), border_size=12
    )
    back = LegacyModelMetadata.from_xml(ours.to_xml())
    assert back.model_dump(exclude={"colors"}) == ours.model_dump(exclude={"colors"})
    assert back.colors == ours.class_colors()
    cz = CzLegacyMetadata(
        name="legacy",
        classes=["a", "b", "c"],
        pixel_types="Bgr24",
        color_handling="SplitRgb",
        border_size=90,
        model_id=MODEL_ID,
    )
    import io

    buffer = io.BytesIO()
    cz.to_xml().write(buffer, encoding="utf-8", xml_declaration=True)
    parsed = LegacyModelMetadata.from_xml(buffer.getvalue())
    assert parsed.classes == ("a", "b", "c")
    assert parsed.colors == tuple(tuple(cls.color) for cls in cz.classes)
    assert (parsed.border_size, parsed.pixel_types, parsed.color_handling) == (
        90,
        ("Bgr24",),
        "SplitRgb",
    )
    assert str(parsed.model_id) == MODEL_ID and parsed.name == "legacy"


@pytest.mark.parametrize(
    "xml",
    [
        b"<Model><BorderSize>x",
        b"<Other/>",
        b"<Model><TrainingClasses/></Model>",
        b"<Model><Id>nope</Id><TrainingClasses><Item Name='a'/></TrainingClasses></Model>",
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b"<Model><ModelName>&b;</ModelName></Model>",
    ],
)
def test_bad_legacy_xml_is_refused(xml):
    with pytest.raises(InvalidContainerError):
        LegacyModelMetadata.from_xml(xml, path="x.czseg")


def test_legacy_classes_are_read_in_document_order_and_odd_label_values_said():
    """As czmodel reads them: output channel k is the k-th class in the file. LabelValues out
    of that order were sorted by, which renamed the outputs (instances then split along the
    nucleus channel as if it were the boundary); now they are said."""
    xml = (
        b"<Model><Channels><Item PixelType='Gray32Float'/></Channels>"
        b"<TrainingClasses><Item Name='background' LabelValue='1'/>"
        b"<Item Name='nucleus' LabelValue='7'/><Item Name='boundary' LabelValue='3'/>"
        b"</TrainingClasses><BorderSize>8</BorderSize></Model>"
    )
    with pytest.warns(UserWarning, match=r"x\.czseg: the classes' LabelValues are not 1, 2, … "
                      r"in order \(background 1, nucleus 7, boundary 3\).*: background, "
                      "nucleus, boundary"):  # fmt: skip
        parsed = LegacyModelMetadata.from_xml(xml, path="x.czseg")
    assert parsed.classes == ("background", "nucleus", "boundary")


@pytest.mark.parametrize("policy", ["percentile:99,1", "percentile:1,101", "bogus"])
def test_a_normalisation_policy_segment_would_refuse_is_refused_at_load(policy):
    """``percentile:99,1`` passed validation and failed in segment, naming the image."""
    from scopeml.tiling.options import SegmentOptions

    fields = {**unet_metadata().to_json_dict(), "ScopeMLNormalize": policy}
    with pytest.raises(InvalidContainerError, match="ScopeMLNormalize"):
        validate_metadata(ModelMetadata, fields, context="invalid model.json: ")
    with pytest.raises(InvalidRequestError, match="normali"):
        SegmentOptions(normalize=policy)


@pytest.mark.parametrize("name", ["Zell\xa0kern", "a\u2009b", "核 über", "nucleus"])
def test_class_names_with_spaces_of_any_kind_are_kept(name):
    """isprintable() refused a no-break space: files saved with one no longer loaded."""
    from scopeml.model.metadata import class_name_problem

    assert class_name_problem(name) is None


@pytest.mark.parametrize("name", ["a\x00", "\u202eboundary", "a\nb", "a\u2028b", ""])
def test_class_names_with_controls_or_bidi_overrides_are_refused(name):
    from scopeml.model.metadata import class_name_problem

    assert class_name_problem(name) is not None
