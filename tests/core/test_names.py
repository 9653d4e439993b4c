from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from milvus_rg_operator.core.names import LABEL_VALUE, label_value, validate_group_name

valid_names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,254}\Z")


@given(valid_names)
def test_every_valid_group_name_has_a_valid_label_value(name: str) -> None:
    assert validate_group_name(name) is None
    value = label_value(name)
    assert len(value) <= 63 and LABEL_VALUE.match(value)


@given(valid_names, valid_names)
def test_label_values_are_injective_up_to_edge_underscores(a: str, b: str) -> None:
    if a.strip("_") != b.strip("_"):
        assert label_value(a) != label_value(b)


def test_documented_mapping() -> None:
    assert label_value("__pending_nodes") == "pending_nodes"
    assert label_value("__default_resource_group") == "default_resource_group"
    assert label_value("rg1") == "rg1"
    assert re.fullmatch(r"a{52}-[0-9a-f]{10}", label_value("a" * 100))


def test_milvus_name_rules() -> None:
    assert validate_group_name("") == "resource group name couldn't be empty"
    assert "256" in (validate_group_name("a" * 256) or "")
    assert validate_group_name("a" * 255) is None
    assert "first character" in (validate_group_name("1rg") or "")
    assert "only contain" in (validate_group_name("rg-1") or "")
    assert validate_group_name("_rg_1") is None
