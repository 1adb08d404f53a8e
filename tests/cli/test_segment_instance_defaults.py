"""The command line's instance defaults are the facade's (``InstanceOptions``), written out in
the CLI only so that ``scopeml --help`` does not import scipy."""

import inspect

from scopeml.cli.segment import _threshold, segment
from scopeml.objects.instances import InstanceOptions


def test_cli_instance_defaults_equal_instance_options() -> None:
    params = inspect.signature(segment).parameters
    defaults = InstanceOptions()
    assert params["grow"].default.default == defaults.grow
    assert params["min_size"].default.default == defaults.min_size
    assert _threshold(params["seed_threshold"].default.default) == defaults.seed_threshold
