"""A request the server's schema refuses (422) reads as one line naming each field and the
problem, not as the Python repr of FastAPI's list of dicts."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from scopeml.client import ServerResponseError


@pytest.fixture(scope="module")
def image_path(image_root) -> str:
    tifffile.imwrite(image_root / "validation.tif", np.zeros((64, 64), np.uint16))
    return "validation.tif"


def test_a_refused_option_is_named_by_its_field(alice, image_path):
    with pytest.raises(ServerResponseError) as err:
        alice.submit_job("nuclei", image_path=image_path, tile_size=10**9, bogus=1)
    assert err.value.status_code == 422
    assert str(err.value).endswith(
        "/jobs: server answered 422: "
        "options.tile_size: Input should be less than or equal to 8192; "
        "options.bogus: Extra inputs are not permitted"
    )


def test_a_body_that_is_not_json_says_so(alice):
    """It said "JSON decode error" at a location ``["body", "1"]``: a bare character offset."""
    said = (r"server answered 422: body: not valid JSON at character 1: Expecting "
            r"property name enclosed in double quotes$")  # fmt: skip
    with pytest.raises(ServerResponseError, match=said):
        alice._request(
            "POST", "/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
        )


def test_other_details_are_kept_as_they_came(alice, image_path):
    with pytest.raises(
        ServerResponseError, match=r"422: image path '/etc/passwd': an absolute path is not allowed"
    ):
        alice.submit_job("nuclei", image_path="/etc/passwd")


def test_an_option_sent_beside_options_is_told_where_it_goes(alice, image_path):
    body = {"model_id": "nuclei", "image_path": image_path, "measure": True, "bogus": 1}
    with pytest.raises(ServerResponseError) as err:
        alice._request("POST", "/jobs", json=body)
    assert err.value.status_code == 422
    said = str(err.value)
    assert "measure: Extra inputs are not permitted: 'measure' is an option: send it in " \
        'options ({"options": {"measure": …}})' in said, said  # fmt: skip
    assert said.endswith("bogus: Extra inputs are not permitted")  # not an option: no hint
