"""Milvus version strings as Milvus reports them, and what the operator may do with each version."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from milvus_rg_operator.core.versions import MilvusVersion, milvus_support, parse_milvus_version

numbers = st.integers(min_value=0, max_value=40)
flavours = st.sampled_from(["", "-lite", "-gpu", "-hotfix", "-20250101-abcdef0", "+build.7", "-gpu+sha.1"])
prefixes = st.sampled_from(["", "v", "V"])


@pytest.mark.parametrize(("text", "expected"), [
    ("v2.5.4", MilvusVersion(2, 5, 4)),
    ("2.4.10", MilvusVersion(2, 4, 10)),
    ("v2.3.5-lite", MilvusVersion(2, 3, 5)),
    ("v2.4.23-gpu", MilvusVersion(2, 4, 23)),
    ("v2.6.0-rc1", MilvusVersion(2, 6, 0, release=False)),
    ("v2.4.1-beta.2", MilvusVersion(2, 4, 1, release=False)),
    ("v2.5.4+20250101.abc", MilvusVersion(2, 5, 4)),
    ("v2.4", MilvusVersion(2, 4, 0)),
    (" v2.5.16 ", MilvusVersion(2, 5, 16)),
])
def test_parses_the_versions_milvus_reports(text: str, expected: MilvusVersion) -> None:
    assert parse_milvus_version(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "master-20240829-b0ac04d1", "unknown", "v", "2", "va.b.c", "2.x.1",
                                  "v2.5.4 extra words"])
def test_garbage_is_no_version_and_is_refused_naming_it(text: str) -> None:
    assert parse_milvus_version(text) is None
    support = milvus_support(text)
    assert not support.supported and not support.drains_possible
    assert "not a version number" in support.message


@given(prefixes, numbers, numbers, numbers, flavours)
def test_build_flavours_do_not_change_the_version(prefix: str, major: int, minor: int, patch: int,
                                                  flavour: str) -> None:
    assert parse_milvus_version(f"{prefix}{major}.{minor}.{patch}{flavour}") == MilvusVersion(major, minor, patch)


@given(numbers, numbers, numbers, st.sampled_from(["-rc1", "-rc.2", "-alpha", "-beta3", "-dev", "-pre1"]))
def test_a_pre_release_sorts_just_before_its_release(major: int, minor: int, patch: int, tag: str) -> None:
    pre = parse_milvus_version(f"v{major}.{minor}.{patch}{tag}")
    assert pre is not None and not pre.release
    assert pre < MilvusVersion(major, minor, patch)
    assert not pre.at_least((major, minor, patch))
    if patch:
        assert pre.at_least((major, minor, patch - 1))


@given(numbers, numbers, numbers, flavours)
def test_support_follows_the_thresholds(major: int, minor: int, patch: int, flavour: str) -> None:
    text = f"v{major}.{minor}.{patch}{flavour}"
    support = milvus_support(text)
    number = (major, minor, patch)
    assert support.supported == (number >= (2, 4, 1))
    assert support.suspend_leaves_group == (number >= (2, 4, 10))
    assert support.drains_possible == (number >= (2, 4, 10))
    assert support.streaming == (number >= (2, 6, 0))
    assert support.groups_from_labels == (number >= (2, 6, 8))
    assert support.reported == text
    if number < (2, 4, 1):
        assert support.message == f"Milvus {text} is older than 2.4.1: resource group configs " \
                                  "(UpdateResourceGroups) are not supported"
    elif number < (2, 4, 10):
        assert support.message == f"Milvus {text}: node/suspend keeps the node in its group before 2.4.10, " \
                                  "so no drain can start"
    else:
        assert support.message == ""


@pytest.mark.parametrize(("text", "supported", "drains"), [
    ("v2.3.5-lite", False, False),  # the PyPI build: no UpdateResourceGroups
    ("v2.4.0", False, False),  # the declarative API was held back from 2.4.0
    ("v2.4.1-rc1", False, False),
    ("v2.4.1", True, False),
    ("v2.4.9", True, False),
    ("v2.4.10", True, True),
    ("v2.4.23", True, True),
    ("v2.5.5", True, True),
    ("v2.6.0", True, True),
])
def test_known_releases(text: str, supported: bool, drains: bool) -> None:
    support = milvus_support(text)
    assert (support.supported, support.drains_possible) == (supported, drains)
    if not drains:
        assert text in support.message


def test_messages_name_the_version_and_what_is_missing() -> None:
    assert milvus_support("v2.3.5").message == (
        "Milvus v2.3.5 is older than 2.4.1: resource group configs (UpdateResourceGroups) are not supported")
    assert milvus_support("2.4.5").message == (
        "Milvus 2.4.5: node/suspend keeps the node in its group before 2.4.10, so no drain can start")


@pytest.mark.parametrize(("text", "streaming", "labels"), [
    ("v2.5.16", False, False), ("v2.6.0-rc1", False, False), ("v2.6.0", True, False), ("v2.6.7", True, False),
    ("v2.6.8", True, True), ("v2.6.20-gpu", True, True), ("v3.0.0", True, True),
])
def test_what_milvus_2_6_changes(text: str, streaming: bool, labels: bool) -> None:
    support = milvus_support(text)
    assert (support.streaming, support.groups_from_labels) == (streaming, labels)
    held = support.data_held(3, 0)
    assert held == ("3 sealed segments; its channels are on streaming nodes" if streaming else "3 segments, 0 channels")
    assert support.data_held(3, 1) == "3 segments, 1 channels"  # whatever a node reports is shown
