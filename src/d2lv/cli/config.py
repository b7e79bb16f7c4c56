"""Subcommand ``config``: write the workflow's config schema and commented ``config.yaml`` from the option groups."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from d2lv.cli.common import Subparsers, add_command


def _config(args: argparse.Namespace) -> None:
    from d2lv import configuration
    from d2lv.errors import InputError

    root = Path(args.root)
    generated = {root / configuration.SCHEMA_PATH: configuration.schema_yaml(),
                 root / configuration.CONFIG_PATH: configuration.config_yaml()}
    stale = [path for path, text in generated.items() if not path.is_file() or path.read_text() != text]
    if args.check:
        if stale:
            raise InputError(f"{', '.join(map(str, stale))} differ from the option groups: run `d2lv config`")
        return
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generated[path])
        print(f"wrote {path}", file=sys.stderr)


def register(sub: Subparsers) -> None:
    p = add_command(sub, "config", _config, "write workflow/schemas/config.schema.yaml and config.yaml from the "
                    "option groups, where every parameter is declared (type, default, bounds, help)")
    p.add_argument("--root", default=".", help="the repository root the files are written under")
    p.add_argument("--check", action="store_true", help="write nothing; fail if either file is not what it would write")
