"""A benchmark system's steps name rules of the workflow, checked when the Snakefile is parsed."""

from __future__ import annotations

import pytest

from d2lv.workflow import UnknownStepError, check_steps


def test_steps_and_view_shares_of_known_rules_pass():
    check_steps({"local": "manifest,sift,verify/queries"}, ["manifest", "sift", "verify"])


def test_a_renamed_rule_stops_the_parse_naming_the_system_and_the_step():
    with pytest.raises(UnknownStepError, match=r"'local' pays for \['local_verify/queries'\]"):
        check_steps({"local": "manifest,local_verify/queries"}, ["manifest", "verify"])
