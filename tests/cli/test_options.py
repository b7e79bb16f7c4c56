"""Each parameter is declared once: the option groups, their config keys, and the rules' command lines."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pkgutil
import shlex
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

import d2lv
from d2lv import cli, workflow
from d2lv.options import Options, option

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def _option_groups() -> list[type[Options]]:
    for info in pkgutil.walk_packages(d2lv.__path__, "d2lv."):
        if info.name.endswith(".params") or info.name == "d2lv.io.images":
            importlib.import_module(info.name)
    groups, todo = [], list(Options.__subclasses__())
    while todo:
        group = todo.pop()
        groups.append(group)
        todo += group.__subclasses__()
    return sorted(groups, key=lambda g: g.__qualname__)


GROUPS = _option_groups()


def _config_value(key: str):
    node = CONFIG
    for part in key.split("."):
        node = node[part]
    return node


def test_the_option_groups_are_found():
    names = {group.__name__ for group in GROUPS}
    assert {"VerifyParams", "RecallParams", "SiftParams", "DecodeParams", "MergeParams"} <= names


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.__name__)
def test_defaults_are_the_config_yaml_values(group):
    """An option's default is config.yaml's value: the command line and the workflow agree."""
    for field in dataclasses.fields(group):
        if "help" in field.metadata:
            key = group.config_key(field)
            assert field.default == _config_value(key), f"{group.__name__}.{field.name} vs config {key}"


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.__name__)
def test_config_values_round_trip_through_the_command_line(group):
    changed = {}
    for field in dataclasses.fields(group):
        if "help" not in field.metadata:
            continue
        value = field.default
        choices = field.metadata.get("choices")
        if isinstance(value, bool):
            value = not value
        elif choices:
            value = next(c for c in choices if c != value)
        elif isinstance(value, float):
            value = value / 2
        elif isinstance(value, int):  # the next value its bounds allow
            value = value + field.metadata["bounds"].get("multiple_of", 1)
        else:
            value = f"{value}-changed"
        changed[field.name] = value
    params = group(**changed)
    parser = argparse.ArgumentParser()
    group.add_arguments(parser)
    assert group.from_args(parser.parse_args(params.to_flags())) == params


def test_rule_flags_are_quoted_and_read_back_by_the_subcommand():
    from d2lv.local.params import VerifyParams

    verify = {**CONFIG["local"]["verify"], "geometry": "affine", "mirrored": False}
    config = {**CONFIG, "local": {**CONFIG["local"], "verify": verify}}
    flags = workflow.flags(config, VerifyParams)
    assert "--no-mirror" in flags and "--geometry=affine" in flags
    args = cli.build_parser().parse_args(["verify", "--pairs", "p", "--queries", "q", "--references", "r",
                                          "-o", "o", *shlex.split(flags)])
    assert VerifyParams.from_args(args) == VerifyParams(geometry="affine", mirrored=False)


def test_a_value_with_spaces_or_a_leading_dash_reaches_the_subcommand_whole():
    from d2lv.local.params import IndexParams

    flags = workflow.flags({"local": {"index_factory": "-odd factory"}}, IndexParams)
    args = cli.build_parser().parse_args(["local-train", "s.h5", "--references", "1", "-o", "o", *shlex.split(flags)])
    assert args.factory == "-odd factory"


def test_todays_option_strings_are_still_accepted():
    parser = cli.build_parser()
    args = parser.parse_args(["local-recall", "--index", "i", "--catalogue", "c", "--queries", "q", "-o", "o",
                              "--single-min-votes", "4",
                              "--single-max-distance", "0.3"])
    assert (args.single_min_votes, args.single_max_mean_distance) == (4, 0.3)
    args = parser.parse_args(["verify", "--pairs", "p", "--queries", "q", "--references", "r", "-o", "o",
                              "--no-mirror"])
    assert args.mirrored is False


def test_a_d2lv_error_is_one_line_with_the_subcommand_and_exit_code_2(tmp_path, capsys):
    out = tmp_path / "m.parquet"
    assert cli.main(["sift", "--quiet", str(tmp_path / "missing.parquet"), "-o", str(out)]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("d2lv sift: error: ") and "\n" not in message


def test_two_groups_options_never_write_one_attribute():
    """local-recall takes --min-votes (recall) and --single-min-votes (the single rule): each sets its own
    field (they once shared one attribute, and the later flag on a rule's command line set both)."""
    from d2lv.cli import build_parser
    from d2lv.local.params import RecallParams, SingleCandidateRule

    args = build_parser().parse_args(["local-recall", "--index", "i", "--catalogue", "c", "--queries", "q",
                                      "-o", "o", "--min-votes=2", "--single-min-votes=7"])
    assert RecallParams.from_args(args).min_votes == 2
    assert SingleCandidateRule.from_args(args).single_min_votes == 7


@dataclasses.dataclass(frozen=True)
class _Clashing(Options):
    section: ClassVar[str] = "other"
    min_votes: int = option(1, "a field named like RecallParams'", flags=("--other-min-votes",))


def test_a_field_sharing_another_groups_attribute_is_refused():
    from d2lv.local.params import RecallParams

    parser = argparse.ArgumentParser()
    RecallParams.add_arguments(parser)
    with pytest.raises(ValueError, match="shares its attribute"):
        _Clashing.add_arguments(parser)
