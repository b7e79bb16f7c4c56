"""Parameters declared once: a frozen dataclass per option group, shared by the CLI and the workflow.

Each field of an :class:`Options` dataclass is at the same time

- a command-line option (``--field-name``, or the ``flags`` given to :func:`option`),
  added to a parser by :meth:`Options.add_arguments` and read back by :meth:`Options.from_args`;
- a config key (``section.field_name``, or the dotted ``key`` given to :func:`option`),
  read by :meth:`Options.from_config` and turned into the command line of a rule by
  :meth:`Options.to_flags`.

- a key of the workflow's config schema and of the commented ``config.yaml``, both generated
  from the option groups by :mod:`d2lv.configuration` (``d2lv config``).

So the name, type, default, bounds and help of a parameter are written in one place, and a
Snakemake rule passes ``d2lv.workflow.flags(config, SomeParams)`` instead of spelling
out each option (see SSCD's components, which declare their own options the same way).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, TypeVar

from d2lv.errors import InputError

T = TypeVar("T", bound="Options")



class Bound(NamedTuple):
    """A bound an option may declare: its JSON-schema keyword, the test a value passes, and how an error says it."""

    schema_keyword: str
    holds: Callable[[Any, Any], bool]
    words: str


#: The bounds, by keyword of :func:`option`.
BOUNDS: dict[str, Bound] = {
    "minimum": Bound("minimum", lambda value, bound: value >= bound, "at least"),
    "exclusive_minimum": Bound("exclusiveMinimum", lambda value, bound: value > bound, "above"),
    "maximum": Bound("maximum", lambda value, bound: value <= bound, "at most"),
    "multiple_of": Bound("multipleOf", lambda value, bound: value % bound == 0, "a multiple of"),
    "min_length": Bound("minLength", lambda value, bound: len(value) >= bound, "a string of length at least"),
}


def option(default: Any, help: str, *, flags: Sequence[str] = (), key: str | None = None,
           choices: Sequence[Any] | None = None, minimum: float | None = None,
           exclusive_minimum: float | None = None, maximum: float | None = None, multiple_of: int | None = None,
           min_length: int | None = None) -> Any:
    """A dataclass field that is also a command-line option and a config key.

    Args:
        default: the value when neither the command line nor the config sets it; its type is the option's.
        help: one line for ``--help``, the config schema and the comment in ``config.yaml``.
        flags: the option strings (default ``--field-name``); a boolean gets ``--flag`` and ``--no-flag``.
        key: dotted config key (default ``<section>.<field_name>``).
        choices: the allowed values.
        minimum, exclusive_minimum, maximum, multiple_of: bounds of a number, checked when the group is built.
        min_length: the shortest a string may be.
    """
    bounds = {"minimum": minimum, "exclusive_minimum": exclusive_minimum, "maximum": maximum,
              "multiple_of": multiple_of, "min_length": min_length}
    metadata = {"help": help, "flags": tuple(flags), "key": key, "choices": choices,
                "bounds": {name: bound for name, bound in bounds.items() if bound is not None}}
    return dataclasses.field(default=default, metadata=metadata)


class Options:
    """Mixin for frozen dataclasses whose fields are declared with :func:`option`."""

    #: The config section the fields live in ("" for top-level keys).
    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        """Refuse a value outside its field's choices or bounds, naming the config key."""
        for field in dataclasses.fields(self):
            value, choices = getattr(self, field.name), field.metadata.get("choices")
            if choices is not None and value not in choices:
                raise InputError(f"{self.config_key(field)}: {value!r} is not one of {', '.join(map(str, choices))}")
            for name, bound in field.metadata.get("bounds", {}).items():
                if not BOUNDS[name].holds(value, bound):
                    raise InputError(f"{self.config_key(field)}: {value!r} must be {BOUNDS[name].words} {bound}")

    @classmethod
    def option_flags(cls, field: dataclasses.Field) -> tuple[str, ...]:
        return field.metadata.get("flags") or (f"--{field.name.replace('_', '-')}",)

    @classmethod
    def config_key(cls, field: dataclasses.Field) -> str:
        """The dotted config key of ``field``."""
        if field.metadata.get("key"):
            return field.metadata["key"]
        return f"{cls.section}.{field.name}" if cls.section else field.name

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add one option per field; an option already added by another group (same flag) is shared."""
        group = parser.add_argument_group(cls._title())
        for field in dataclasses.fields(cls):
            flags = cls.option_flags(field)
            if any(flag in parser._option_string_actions for flag in flags):
                continue
            clash = [action.option_strings for action in parser._actions if action.dest == field.name]
            if clash:  # two options writing one attribute: the last given would set both groups' field
                raise ValueError(f"{cls.__name__}.{field.name} ({', '.join(flags)}) shares its attribute with "
                                 f"{', '.join(clash[0])}: rename the field")
            help_text = f"{field.metadata['help']} (default: {field.default}; config {cls.config_key(field)})"
            if isinstance(field.default, bool):
                group.add_argument(*flags, dest=field.name, action=argparse.BooleanOptionalAction,
                                   default=field.default, help=help_text)
            else:
                group.add_argument(*flags, dest=field.name, type=type(field.default), default=field.default,
                                   choices=field.metadata.get("choices"), help=help_text)

    @classmethod
    def from_args(cls: type[T], args: argparse.Namespace) -> T:
        return cls(**{field.name: getattr(args, field.name) for field in dataclasses.fields(cls)})

    @classmethod
    def from_config(cls: type[T], config: Mapping[str, Any]) -> T:
        """The values the config sets (keys it lacks keep their default)."""
        values = {}
        for field in dataclasses.fields(cls):
            value = _lookup(config, cls.config_key(field))
            if value is not _MISSING:
                values[field.name] = value
        return cls(**values)

    def to_flags(self) -> list[str]:
        """The command line that :meth:`from_args` turns back into these values."""
        flags: list[str] = []
        for field in dataclasses.fields(self):
            value, name = getattr(self, field.name), self.option_flags(field)[0]
            if isinstance(field.default, bool):
                flags.append(name if value else f"--no-{name[2:]}")
            else:  # --name=value: a value that starts with a dash (or is empty) stays a value
                flags.append(f"{name}={value}")
        return flags

    @classmethod
    def _title(cls) -> str:
        return (cls.__doc__ or cls.__name__).strip().splitlines()[0].rstrip(".")


_MISSING = object()


def _lookup(config: Mapping[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node
