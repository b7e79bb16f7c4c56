"""workflow/schemas/config.schema.yaml against config.yaml: every key documented, typed and defaulted there,
every object closed, so that a misspelled or mistyped key stops the workflow with its name."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONFIG_PATH = REPO / "config.yaml"

#: Keys the schema declares that config.yaml leaves out, because they are only ever set on the command
#: line (`--config KEY=VALUE`) or by a benchmark config: dotted path -> where it is set. Every top-level
#: key the workflow reads (rules/*.smk, Snakefile, src/d2lv/workflow/: `config[...]`, `config.get(...)`;
#: `d2lv bench run`'s `--config queries=... references=... results=... ground_truth=... categories=...`)
#: currently has a default in config.yaml, so there are none; add one here only with its default in the schema.
COMMAND_LINE_ONLY: dict[str, str] = {}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def schema() -> dict:
    return load(SCHEMA_PATH)


@pytest.fixture(scope="module")
def config() -> dict:
    return load(CONFIG_PATH)


def check(config: dict) -> dict:
    """Validate a deep copy (snakemake's validate fills the schema's defaults into the dict it is given)."""
    checked = copy.deepcopy(config)
    validate(checked, str(SCHEMA_PATH))
    return checked


def deep_merge(base: dict, overlay: dict) -> dict:
    """``overlay`` over ``base``, section by section (as snakemake layers --configfile over configfile:)."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def walk(schema: dict, prefix: str = ""):
    """(dotted key, subschema) of every property, at every level."""
    for key, sub in schema.get("properties", {}).items():
        yield prefix + key, sub
        yield from walk(sub, f"{prefix}{key}.")


def lookup(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def leaves_and_sections(config: dict, prefix: str = ""):
    """Dotted key of every key of ``config``, at every level."""
    for key, value in config.items():
        yield prefix + key
        if isinstance(value, dict):
            yield from leaves_and_sections(value, f"{prefix}{key}.")


JSON_TYPES = {"object": dict, "string": str, "boolean": bool, "integer": int, "number": (int, float)}


def test_config_yaml_validates(config):
    assert check(config) == config  # nothing to fill in: config.yaml sets every key


def test_every_config_key_is_described_typed_and_defaulted(schema, config):
    declared = dict(walk(schema))
    problems = []
    for key in leaves_and_sections(config):
        sub = declared.get(key)
        if sub is None:
            problems.append(f"{key}: not in the schema")
            continue
        if not str(sub.get("description", "")).strip():
            problems.append(f"{key}: no description")
        if "type" not in sub:
            problems.append(f"{key}: no type")
        value = lookup(config, key)
        if "default" not in sub:
            problems.append(f"{key}: no default")
        elif sub["default"] != value or type(sub["default"]) is not type(value):
            problems.append(f"{key}: default {sub['default']!r} but config.yaml has {value!r}")
        if "type" in sub:
            expected = JSON_TYPES[sub["type"]]
            if not isinstance(value, expected) or (sub["type"] in ("integer", "number") and isinstance(value, bool)):
                problems.append(f"{key}: type {sub['type']} but config.yaml has {value!r}")
    assert not problems, "\n".join(problems)


def test_every_schema_key_is_in_config_yaml_or_command_line_only(schema, config):
    in_config = set(leaves_and_sections(config))
    extra = {key for key, _ in walk(schema)} - in_config
    assert extra == set(COMMAND_LINE_ONLY), f"schema keys neither in config.yaml nor in COMMAND_LINE_ONLY: " \
                                            f"{sorted(extra - set(COMMAND_LINE_ONLY))}"
    for key in COMMAND_LINE_ONLY:  # still documented, typed and defaulted
        sub = dict(walk(schema))[key]
        assert sub.get("description") and "type" in sub and "default" in sub, key


def test_every_object_is_closed(schema):
    objects = [("<top level>", schema)] + [(key, sub) for key, sub in walk(schema) if sub.get("type") == "object"]
    assert len(objects) > 10
    open_ = [key for key, sub in objects if sub.get("additionalProperties") is not False]
    assert not open_, f"objects without additionalProperties: false: {open_}"


def test_required_lists_name_declared_keys(schema):
    objects = [("<top level>", schema)] + [(key, sub) for key, sub in walk(schema) if sub.get("type") == "object"]
    for key, sub in objects:
        assert set(sub.get("required", [])) <= set(sub["properties"]), key
    assert {"queries", "references", "results", "shard_size"} <= set(schema["required"])


def test_missing_keys_are_filled_from_the_defaults(config):
    partial = {key: config[key] for key in ("queries", "references", "results", "shard_size")}
    partial["local"] = {"verify": {"ratio": 0.8}}
    filled = check(partial)
    assert filled["local"]["verify"] == {**config["local"]["verify"], "ratio": 0.8}
    assert filled["local"]["single"] == config["local"]["single"]
    assert filled == deep_merge(config, {"local": {"verify": {"ratio": 0.8}}})


def rejection(config: dict) -> str:
    with pytest.raises(WorkflowError) as caught:
        check(config)
    return str(caught.value)


def test_a_misspelled_top_level_key_is_rejected_by_name(config):
    bad = copy.deepcopy(config)
    bad["shard_sise"] = bad.pop("shard_size")
    message = rejection(bad)
    assert "Additional properties are not allowed ('shard_sise' was unexpected)" in message, message


def test_a_misspelled_key_added_beside_the_right_one_is_rejected(config):
    message = rejection({**config, "shard_sise": 10})
    assert "'shard_sise' was unexpected" in message, message


def test_a_misspelled_nested_key_is_rejected_by_name(config):
    bad = copy.deepcopy(config)
    bad["pdq"]["topks"] = bad["pdq"].pop("topk")
    message = rejection(bad)
    assert "Additional properties are not allowed ('topks' was unexpected)" in message, message
    assert "['pdq']" in message, message  # the error also says which section


def test_a_misspelled_deeply_nested_key_is_rejected_by_name(config):
    bad = copy.deepcopy(config)
    bad["local"]["single"]["min_vote"] = 4
    message = rejection(bad)
    assert "'min_vote' was unexpected" in message, message


@pytest.mark.parametrize("section, key, value, words", [
    (None, "shard_size", "ten", "'ten' is not of type 'integer'"),
    ("pdq", "enabled", "yes", "'yes' is not of type 'boolean'"),
    ("descriptor", "device", "gpu", "'gpu' is not one of ['auto', 'cpu', 'cuda']"),
    ("detect", "image_size", 300, "300 is not a multiple of 32"),
    (None, "shard_size", 0, "0 is less than the minimum of 1"),
])
def test_a_wrong_value_is_rejected(config, section, key, value, words):
    bad = copy.deepcopy(config)
    (bad[section] if section else bad)[key] = value
    message = rejection(bad)
    assert words in message, message


def test_the_benchmark_overlay_validates(config):
    overlay = load(REPO / "benchmarks" / "disc1k.yaml")
    merged = deep_merge(config, overlay)
    assert merged["shard_size"] == overlay["shard_size"] and merged["detect"]["enabled"] is True
    assert check(merged) == merged
