"""One declaration per parameter: the config schema and config.yaml are generated from the option groups."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
import yaml

import d2lv
from d2lv import configuration
from d2lv.cli import main
from d2lv.errors import InputError
from d2lv.options import Options

REPO = Path(__file__).resolve().parents[1]


def _flat_keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        keys += _flat_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]
    return keys


def _option_groups() -> set[type[Options]]:
    for module in pkgutil.walk_packages(d2lv.__path__, "d2lv."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found, todo = set(), list(Options.__subclasses__())
    while todo:
        group = todo.pop()
        found.add(group)
        todo += group.__subclasses__()
    return {group for group in found if group.__module__.startswith("d2lv.")}  # not a test's own group


def test_the_committed_schema_and_config_are_what_the_option_groups_generate():
    assert (REPO / configuration.SCHEMA_PATH).read_text() == configuration.schema_yaml(), "run `d2lv config`"
    assert (REPO / configuration.CONFIG_PATH).read_text() == configuration.config_yaml(), "run `d2lv config`"
    assert main(["config", "--check", "--root", str(REPO)]) == 0


def test_every_config_key_is_exactly_one_option_group_field():
    keys = [key for key, _, _ in configuration.options()]
    assert len(keys) == len(set(keys))
    assert sorted(_flat_keys(yaml.safe_load((REPO / "config.yaml").read_text()))) == sorted(keys)


def test_every_option_group_of_the_package_is_in_a_section():
    placed = [group for section in configuration.SECTIONS for group in section.groups]
    assert len(placed) == len(set(placed))
    assert set(placed) == _option_groups()


def test_the_config_files_default_is_each_fields_default():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for section in configuration.SECTIONS:
        for group in section.groups:
            assert group.from_config(config) == group()


def test_a_value_outside_its_bounds_or_choices_names_its_key():
    with pytest.raises(InputError, match="shard_size: 0 must be at least 1"):
        configuration.RunParams(shard_size=0)
    from d2lv.local.params import VerifyParams

    with pytest.raises(InputError, match="local.verify.ratio"):
        VerifyParams(ratio=1.5)
    with pytest.raises(InputError, match="local.verify.geometry: 'affinity' is not one of"):
        VerifyParams(geometry="affinity")


def test_check_fails_on_a_stale_file(tmp_path):
    assert main(["config", "--root", str(tmp_path)]) == 0
    assert main(["config", "--check", "--root", str(tmp_path)]) == 0
    (tmp_path / configuration.CONFIG_PATH).write_text("shard_size: 7\n")
    assert main(["config", "--check", "--root", str(tmp_path)]) == 2
