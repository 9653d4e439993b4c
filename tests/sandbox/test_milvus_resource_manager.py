"""Pure tests of the simulated resource manager against milvus-rg-semantics.md section 1."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from milvus_rg_sandbox.milvus.resource_manager import (
    DEFAULT_RG,
    MAX_RG_NUM,
    Code,
    MilvusError,
    NodeState,
    ResourceManager,
    RGConfig,
    node_labels_from_env,
)

SEEDS = range(8)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_rm(nodes: int = 0, seed: int = 0, **kwargs: Any) -> ResourceManager:
    rm = ResourceManager(seed=seed, **kwargs)
    for index in range(nodes):
        rm.add_node(f"qn-{index}", f"10.0.0.{index}:21123")
    rm.recover_until_stable()
    return rm


def held_by(rm: ResourceManager, node_id: int) -> int:
    channels, segments = rm.distribution(node_id)
    return len(channels) + len(segments)


def sizes(rm: ResourceManager) -> dict[str, int]:
    return {name: len(rg.nodes) for name, rg in rm.groups.items()}


def assert_error(error: pytest.ExceptionInfo[MilvusError], code: int, message: str) -> None:
    assert error.value.code == code
    assert message in error.value.message


# ---------------------------------------------------------------- names and create
@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("", Code.UNEXPECTED, "resource group name couldn't be empty"),
        ("a" * 256, Code.PARAMETER_INVALID, "must be less than 255 characters"),
        ("1rg", Code.PARAMETER_INVALID, "first character of a resource group name must be an underscore or letter"),
        ("rg-1", Code.PARAMETER_INVALID, "can only contain numbers, letters and underscores"),
    ],
)
def test_invalid_names_are_rejected(name: str, code: int, message: str) -> None:
    rm = make_rm()
    with pytest.raises(MilvusError) as error:
        rm.create_resource_group(name, RGConfig(0, 0))
    assert_error(error, code, message)
    assert name not in rm.groups


def test_valid_names_include_underscore_start_and_255_chars() -> None:
    rm = make_rm()
    for name in ("_x", "rg_1", "a" * 255):
        rm.create_resource_group(name)
    assert {"_x", "rg_1", "a" * 255} <= set(rm.list_resource_groups())


def test_create_is_idempotent_for_same_config_and_301_for_different() -> None:
    rm = make_rm()
    rm.create_resource_group("rg1", RGConfig(1, 2))
    rm.create_resource_group("rg1", RGConfig(1, 2))
    with pytest.raises(MilvusError) as error:
        rm.create_resource_group("rg1", RGConfig(1, 3))
    assert_error(error, Code.RG_ALREADY_EXIST, "already exist, but create with different config")
    assert rm.groups["rg1"].config == RGConfig(1, 2)


def test_nil_config_means_zero_zero() -> None:
    rm = make_rm()
    rm.create_resource_group("rg1", None)
    assert rm.describe_resource_group("rg1").config == RGConfig(0, 0)


def test_create_counts_default_group_towards_the_1024_limit() -> None:
    rm = make_rm()
    for index in range(MAX_RG_NUM - 1):
        rm.create_resource_group(f"rg{index}")
    with pytest.raises(MilvusError) as error:
        rm.create_resource_group("one_too_many")
    assert_error(error, Code.RG_NUM_LIMIT, "num reach limit")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (RGConfig(None, 1), "requests or limits is required"),
        (RGConfig(1, None), "requests or limits is required"),
        (RGConfig(-1, 1), "node num in `requests` or `limits` should not less than 0"),
        (RGConfig(2, 1), "limits node num should not less than requests node num"),
        (RGConfig(0, 1, transfer_from=("rg1",)), "resource group in `TransferFrom` rg1 should not be itself"),
        (RGConfig(0, 1, transfer_from=("nope",)), "resource group in `TransferFrom` nope not exist"),
        (RGConfig(0, 1, transfer_to=("rg1",)), "resource group in `TransferTo` rg1 should not be itself"),
        (RGConfig(0, 1, transfer_to=("nope",)), "resource group in `TransferTo` nope not exist"),
    ],
)
def test_illegal_configs_give_303_on_create_and_update(config: RGConfig, message: str) -> None:
    rm = make_rm()
    with pytest.raises(MilvusError) as error:
        rm.create_resource_group("rg1", config)
    assert_error(error, Code.RG_ILLEGAL_CONFIG, message)
    rm.create_resource_group("rg1")
    with pytest.raises(MilvusError) as error:
        rm.update_resource_groups({"rg1": config})
    assert_error(error, Code.RG_ILLEGAL_CONFIG, message)


# ---------------------------------------------------------------- update
def test_update_requires_every_group_to_exist_and_applies_nothing_otherwise() -> None:
    rm = make_rm()
    rm.create_resource_group("rg1")
    with pytest.raises(MilvusError) as error:
        rm.update_resource_groups({"rg1": RGConfig(1, 1), "ghost": RGConfig(1, 1)})
    assert_error(error, Code.RG_NOT_FOUND, "resource group not found")
    assert rm.groups["rg1"].config == RGConfig(0, 0)


def test_update_batch_is_all_or_nothing() -> None:
    rm = make_rm()
    rm.create_resource_group("rg1")
    rm.create_resource_group("rg2")
    with pytest.raises(MilvusError):
        rm.update_resource_groups({"rg1": RGConfig(1, 1), "rg2": RGConfig(3, 2)})
    assert rm.groups["rg1"].config == RGConfig(0, 0)


def test_update_replaces_the_whole_config() -> None:
    rm = make_rm()
    rm.create_resource_group("pending", RGConfig(0, 10))
    rm.create_resource_group("rg1", RGConfig(0, 0, ("pending",), ("pending",), (("ZONE", "a"),)))
    rm.update_resource_groups({"rg1": RGConfig(1, 1)})
    assert rm.groups["rg1"].config == RGConfig(1, 1)


def test_groups_referring_to_each_other_need_create_then_update() -> None:
    rm = make_rm()
    with pytest.raises(MilvusError):
        rm.create_resource_group("a", RGConfig(0, 0, transfer_from=("b",)))
    rm.create_resource_group("a")
    rm.create_resource_group("b")
    rm.update_resource_groups({"a": RGConfig(0, 0, ("b",)), "b": RGConfig(0, 0, ("a",))})
    assert rm.groups["b"].config.transfer_from == ("a",)


# ---------------------------------------------------------------- drop
def test_drop_of_absent_group_succeeds() -> None:
    make_rm().drop_resource_group("absent")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("default", "default resource group is not deletable"),
        ("limits", "resource group's limits node num is not 0"),
        ("from", "resource group rg1 is used by rg2's `TransferFrom`, remove that configuration first"),
        ("to", "resource group rg1 is used by rg2's `TransferTo`, remove that configuration first"),
        ("replica", "some replicas still loaded in resource group[rg1], release it first"),
    ],
)
def test_drop_refusals(setup: str, message: str) -> None:
    rm = make_rm(nodes=2)
    rm.create_resource_group("rg1", RGConfig(1, 1) if setup in ("limits", "replica") else RGConfig(0, 0))
    referring = ("rg1",)
    rm.create_resource_group(
        "rg2",
        RGConfig(0, 0, referring if setup == "from" else (), referring if setup == "to" else ()),
    )
    rm.recover_until_stable()
    if setup == "replica":
        rm.create_collection("c1")
        rm.load_collection("c1", 1, ["rg1"])
        rm.update_resource_groups({"rg1": RGConfig(0, 0)})
    with pytest.raises(MilvusError) as error:
        rm.drop_resource_group(DEFAULT_RG if setup == "default" else "rg1")
    assert_error(error, Code.PARAMETER_INVALID, message)


def test_drop_pushes_remaining_nodes_out_through_redundant_recovery() -> None:
    rm = make_rm(nodes=2)
    rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})
    rm.create_resource_group("rg1", RGConfig(2, 2))
    rm.create_resource_group("spare", RGConfig(0, 5))
    rm.recover_until_stable()
    assert sizes(rm)["rg1"] == 2
    rm.update_resource_groups({"rg1": RGConfig(0, 0)})  # no recovery pass before the drop
    rm.drop_resource_group("rg1")
    assert "rg1" not in rm.groups
    assert sizes(rm) == {DEFAULT_RG: 0, "spare": 2}


# ---------------------------------------------------------------- default group and incoming nodes
def test_default_group_reports_capacity_one_million_and_takes_surplus() -> None:
    rm = make_rm(nodes=3)
    rm.update_resource_groups({DEFAULT_RG: RGConfig(1, 1)})
    rm.recover_until_stable()
    info = rm.describe_resource_group(DEFAULT_RG)
    assert info.capacity == 1_000_000
    assert info.num_available_node == 3  # above its limits: nobody else has room
    assert rm.last_errors[DEFAULT_RG] == "all resource group reach limits"


def test_capacity_of_other_groups_is_requests() -> None:
    rm = make_rm()
    rm.create_resource_group("rg1", RGConfig(2, 5))
    assert rm.describe_resource_group("rg1").capacity == 2


def test_incoming_node_prefers_most_missing_then_most_room() -> None:
    for seed in SEEDS:
        rm = make_rm(seed=seed)
        rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})  # its default limits would be the most room
        rm.create_resource_group("small_room", RGConfig(0, 1))
        rm.create_resource_group("big_room", RGConfig(0, 5))
        rm.create_resource_group("missing", RGConfig(1, 1))
        first = rm.add_node("a", "a:1")
        rm.assign_pending_incoming()
        assert rm.group_of(first) == "missing"
        second = rm.add_node("b", "b:1")
        rm.assign_pending_incoming()
        assert rm.group_of(second) == "big_room"


def test_between_requests_and_limits_nothing_moves() -> None:
    rm = make_rm(nodes=3)
    rm.create_resource_group("rg1", RGConfig(1, 5))
    rm.recover_until_stable()
    assert sizes(rm)["rg1"] == 1
    rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})  # default now redundant -> rg1 has room
    rm.recover_until_stable()
    assert sizes(rm) == {DEFAULT_RG: 0, "rg1": 3}


# ---------------------------------------------------------------- priorities
def test_missing_group_takes_from_redundant_before_transfer_from_before_others() -> None:
    for seed in SEEDS:
        rm = make_rm(nodes=6, seed=seed)
        rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})
        for name in ("over", "preferred", "other", "target"):
            rm.create_resource_group(name)
        rm.update_resource_groups(
            {"over": RGConfig(0, 2), "preferred": RGConfig(0, 2), "other": RGConfig(0, 2),
             "target": RGConfig(0, 0, transfer_from=("preferred",))}
        )
        rm.recover_until_stable()
        assert sizes(rm) == {DEFAULT_RG: 0, "over": 2, "preferred": 2, "other": 2, "target": 0}
        # "over" becomes redundant by one; target wants 3: 1 from over, then 2 from preferred
        rm.update_resource_groups(
            {"over": RGConfig(0, 1), "target": RGConfig(3, 3, transfer_from=("preferred",))}
        )
        rm._recover_missing(rm.groups["target"])
        assert sizes(rm) == {DEFAULT_RG: 0, "over": 1, "preferred": 0, "other": 2, "target": 3}, seed


def test_group_at_its_requests_is_never_a_source() -> None:
    rm = make_rm(nodes=2)
    rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})
    rm.create_resource_group("held", RGConfig(2, 2))
    rm.recover_until_stable()
    rm.create_resource_group("wants", RGConfig(1, 1))
    rm.recover_until_stable()
    assert sizes(rm)["held"] == 2
    assert rm.last_errors["wants"].startswith("nodes not enough")


def test_redundant_nodes_go_to_missing_then_transfer_to_then_room_then_default() -> None:
    for seed in SEEDS:
        rm = make_rm(nodes=4, seed=seed)
        rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})
        for name in ("src", "needy", "preferred", "roomy"):
            rm.create_resource_group(name)
        rm.update_resource_groups({"src": RGConfig(4, 4)})
        rm.recover_until_stable()
        rm.update_resource_groups(
            {"src": RGConfig(0, 0, transfer_to=("preferred",)), "needy": RGConfig(1, 1),
             "preferred": RGConfig(0, 1), "roomy": RGConfig(0, 1)}
        )
        rm._recover_redundant(rm.groups["src"])
        assert sizes(rm) == {DEFAULT_RG: 1, "src": 0, "needy": 1, "preferred": 1, "roomy": 1}, seed


def test_transfer_lists_order_is_ignored() -> None:
    results = set()
    for seed in range(20):
        rm = make_rm(nodes=2, seed=seed)
        rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})
        for name in ("a", "b", "t"):
            rm.create_resource_group(name)
        rm.update_resource_groups({"a": RGConfig(0, 1), "b": RGConfig(0, 1)})
        rm.recover_until_stable()
        rm.update_resource_groups({"t": RGConfig(1, 1, transfer_from=("a", "b"))})
        rm.recover_until_stable()
        results.add(next(name for name in ("a", "b") if not rm.groups[name].nodes))
    assert results == {"a", "b"}  # the first listed group has no priority: a Go-map tie


# ---------------------------------------------------------------- node filters and labels
def test_node_labels_from_env_before_2_6_8_keep_the_role_token() -> None:
    env = {"MILVUS_SERVER_LABEL_QUERYNODE_LOCATION": "dc1", "MILVUS_SERVER_LABEL_ZONE": "az1", "OTHER": "x"}
    assert node_labels_from_env(env, "v2.5.4") == {"QUERYNODE_LOCATION": "dc1", "ZONE": "az1"}


def test_node_labels_from_env_since_2_6_8_strip_the_role_and_skip_other_roles() -> None:
    env = {
        "MILVUS_SERVER_LABEL_QUERYNODE_LOCATION": "dc1",
        "MILVUS_SERVER_LABEL_ZONE": "az1",
        "MILVUS_SERVER_LABEL_DATANODE_DISK": "ssd",
        "MILVUS_SERVER_LABEL_QN_ZONE": "az2",
    }
    assert node_labels_from_env(env, "2.6.8") == {"LOCATION": "dc1", "ZONE": "az2"}


def test_node_filter_makes_non_matching_nodes_dirty_and_moves_them_out() -> None:
    rm = make_rm()
    east = rm.add_node("east", "e:1", {"MILVUS_SERVER_LABEL_ZONE": "east"})
    west = rm.add_node("west", "w:1", {"MILVUS_SERVER_LABEL_ZONE": "west"})
    rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})
    rm.create_resource_group("rg1", RGConfig(0, 2))
    rm.recover_until_stable()
    assert rm.groups["rg1"].nodes == {east, west}
    rm.update_resource_groups({"rg1": RGConfig(0, 2, node_labels=(("ZONE", "east"),))})
    assert rm.redundant(rm.groups["rg1"]) == 1 and rm.node_num(rm.groups["rg1"]) == 1
    rm.recover_until_stable()
    assert rm.groups["rg1"].nodes == {east}
    assert rm.groups[DEFAULT_RG].nodes == {west}  # default accepts any node, even above its limits


def test_incoming_node_only_goes_where_the_filter_accepts_it() -> None:
    rm = make_rm()
    rm.create_resource_group("east", RGConfig(1, 1, node_labels=(("ZONE", "east"),)))
    node = rm.add_node("w", "w:1", {"MILVUS_SERVER_LABEL_ZONE": "west"})
    rm.recover_until_stable()
    assert rm.group_of(node) == DEFAULT_RG
    assert rm.last_errors["east"].startswith("nodes not enough")


def test_static_resource_group_label_since_2_6_8() -> None:
    rm = make_rm(version="2.6.8")
    node = rm.add_node("qn", "qn:1", {"MILVUS_SERVER_LABEL_QN_RESOURCE_GROUP": "static_rg"})
    rm.recover_until_stable()
    assert rm.group_of(node) == "static_rg"
    assert rm.groups["static_rg"].config == RGConfig(0, 1_000_000)
    rm.update_resource_groups({"static_rg": RGConfig(0, 0)})
    with pytest.raises(MilvusError, match=f"node {node} is still in the resource group"):
        rm.drop_resource_group("static_rg")


def test_static_resource_group_label_is_an_ordinary_label_before_2_6_8() -> None:
    rm = make_rm(version="2.5")
    node = rm.add_node("qn", "qn:1", {"MILVUS_SERVER_LABEL_RESOURCE_GROUP": "static_rg"})
    rm.recover_until_stable()
    assert rm.group_of(node) == DEFAULT_RG and "static_rg" not in rm.groups


# ---------------------------------------------------------------- node departure
def test_graceful_stop_leaves_group_at_once_and_replacement_is_pulled() -> None:
    rm = make_rm(nodes=3)
    rm.create_resource_group("rg1", RGConfig(1, 1))
    rm.recover_until_stable()
    (member,) = rm.groups["rg1"].nodes
    rm.stop_node(member)
    assert rm.group_of(member) is None
    assert rm.node_gone(member)  # no data: gone at once
    rm.recover_until_stable()
    assert sizes(rm) == {DEFAULT_RG: 1, "rg1": 1}


def test_crashed_node_stays_until_session_ttl_then_is_removed() -> None:
    clock = FakeClock()
    rm = make_rm(nodes=2, clock=clock, session_ttl=30.0)
    rm.create_resource_group("rg1", RGConfig(1, 1))
    rm.recover_until_stable()
    (member,) = rm.groups["rg1"].nodes
    rm.crash_node(member)
    clock.now += 29
    rm.recover_until_stable()
    assert rm.group_of(member) == "rg1" and not rm.node_gone(member)
    assert rm.describe_resource_group("rg1").num_available_node == 1
    clock.now += 1
    rm.recover_until_stable()
    assert rm.node_gone(member)
    assert rm.groups["rg1"].nodes and member not in rm.groups["rg1"].nodes


def test_node_ids_are_never_reused() -> None:
    rm = make_rm(nodes=1)
    rm.stop_node(1)
    assert rm.add_node("qn-0", "10.0.0.0:21123") == 2


def test_suspend_leaves_group_and_gets_no_incoming_assignment_until_resume() -> None:
    rm = make_rm(nodes=2)
    rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})
    rm.create_resource_group("rg1", RGConfig(1, 1))
    rm.create_resource_group("rg2", RGConfig(0, 5))
    rm.recover_until_stable()
    (member,) = rm.groups["rg1"].nodes
    rm.suspend_node(member)
    rm.recover_until_stable()
    assert rm.group_of(member) is None and not rm.node_gone(member)
    assert len(rm.groups["rg1"].nodes) == 1  # replacement pulled from rg2
    rm.resume_node(member)
    rm.recover_until_stable()
    assert rm.group_of(member) == "rg2"  # may land in a different group


# ---------------------------------------------------------------- collections and replicas
def loaded_rm(nodes: int = 4, **kwargs: Any) -> ResourceManager:
    rm = make_rm(nodes=nodes, **kwargs)
    rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})
    rm.create_resource_group("rg1", RGConfig(nodes, nodes))
    rm.create_resource_group("rg2", RGConfig(0, 10))
    rm.recover_until_stable()
    rm.create_collection("c1")
    return rm


def test_load_rejects_wrong_group_count_and_too_few_nodes() -> None:
    rm = loaded_rm(nodes=2)
    with pytest.raises(MilvusError) as error:
        rm.load_collection("c1", 3, ["rg1", "rg2"])
    assert_error(error, Code.PARAMETER_INVALID, "resource group num can only be 0, 1 or same as replica number")
    with pytest.raises(MilvusError) as error:
        rm.load_collection("c1", 3, ["rg1"])
    assert_error(error, Code.RG_NODE_NOT_ENOUGH, "resource group node not enough")
    with pytest.raises(MilvusError) as error:
        rm.load_collection("c1", 1, ["ghost"])
    assert_error(error, Code.RG_NOT_FOUND, "resource group not found")
    with pytest.raises(MilvusError) as error:
        rm.load_collection("nope", 1)
    assert_error(error, Code.COLLECTION_NOT_FOUND, "collection not found")


def test_replicas_in_one_group_get_nodes_spread_evenly() -> None:
    rm = loaded_rm(nodes=5)
    rm.load_collection("c1", 2, ["rg1"])
    counts = sorted(len(r.rw_nodes) for r in rm.replicas_of("c1"))
    assert counts == [2, 3]
    assert rm.describe_resource_group("rg1").num_loaded_replica == {"c1": 2}
    held = [rm.distribution(n) for n in rm.groups["rg1"].nodes]
    assert sum(len(channels) for channels, _ in held) == 2 * rm.num_channels
    assert sum(len(segments) for _, segments in held) == 2 * rm.num_segments


def test_node_leaving_group_becomes_read_only_and_its_data_moves_one_item_per_balance_delay() -> None:
    clock = FakeClock()
    rm = loaded_rm(nodes=3, clock=clock, balance_delay=5.0)
    rm.load_collection("c1", 1, ["rg1"])
    busy = max(rm.groups["rg1"].nodes, key=lambda n: held_by(rm, n))
    held = held_by(rm, busy)
    assert held >= 2
    rm.stop_node(busy)
    (replica,) = rm.replicas_of("c1")
    assert busy in replica.ro_nodes and busy not in replica.rw_nodes
    assert rm.describe_resource_group("rg1").num_outgoing_node == {"c1": 1}
    for remaining in range(held - 1, 0, -1):
        clock.now += 5
        rm.advance()
        assert held_by(rm, busy) == remaining, "one item per balance_delay"
    channels, _ = rm.distribution(busy)
    assert not channels, "channels move before segments"
    clock.now += 5
    rm.advance()
    assert rm.node_gone(busy), "a stopping node exits once it holds nothing"
    assert rm.describe_resource_group("rg1").num_outgoing_node == {}
    assert rm.unserved_segment_seconds() == 0 and rm.unserved_channel_seconds() == 0


def test_node_moved_to_other_group_counts_as_incoming_there() -> None:
    clock = FakeClock()
    rm = loaded_rm(nodes=2, clock=clock, balance_delay=5.0)
    rm.load_collection("c1", 1, ["rg1"])
    rm.update_resource_groups({"rg1": RGConfig(1, 1)})
    rm.recover()
    assert rm.describe_resource_group("rg2").num_incoming_node == {"c1": 1}
    assert rm.describe_resource_group("rg1").num_outgoing_node == {"c1": 1}
    clock.now += 100
    rm.advance()
    assert rm.describe_resource_group("rg2").num_incoming_node == {}


def test_transfer_replica_rules_and_effect() -> None:
    clock = FakeClock()
    rm = loaded_rm(nodes=2, clock=clock)
    rm.update_resource_groups({"rg1": RGConfig(1, 1), "rg2": RGConfig(1, 1)})
    rm.recover_until_stable()
    with pytest.raises(MilvusError) as error:
        rm.transfer_replica("rg1", "rg2", "c1", 1)
    assert_error(error, Code.PARAMETER_INVALID, "invalid parameter[expected=Collection not loaded]")
    rm.load_collection("c1", 1, ["rg1"])
    for args, code in [
        (("ghost", "rg2", "c1", 1), Code.RG_NOT_FOUND),
        (("rg1", "rg2", "c1", 0), Code.PARAMETER_INVALID),
        (("rg1", "rg1", "c1", 1), Code.PARAMETER_INVALID),
        (("rg2", "rg1", "c1", 1), Code.PARAMETER_INVALID),
    ]:
        with pytest.raises(MilvusError) as error:
            rm.transfer_replica(*args)
        assert error.value.code == code
    (replica,) = rm.replicas_of("c1")
    old_nodes = set(replica.rw_nodes)
    rm.transfer_replica("rg1", "rg2", "c1", 1)
    rm.recover_until_stable()
    assert replica.resource_group == "rg2" and rm.describe_resource_group("rg2").num_loaded_replica == {"c1": 1}
    assert replica.rw_nodes == old_nodes, "the replica observer moves the nodes in the background"
    clock.now += rm.check_node_in_replica_interval
    rm.advance()
    assert replica.rw_nodes == rm.groups["rg2"].nodes and set(replica.ro_nodes) == old_nodes


def test_release_allows_drop() -> None:
    rm = loaded_rm(nodes=1)
    rm.load_collection("c1", 1, ["rg1"])
    rm.update_resource_groups({"rg1": RGConfig(0, 0)})
    rm.release_collection("c1")
    rm.drop_resource_group("rg1")
    assert "rg1" not in rm.groups


def test_transfer_node_rewrites_requests_and_limits() -> None:
    rm = make_rm(nodes=2)
    rm.create_resource_group("rg1", RGConfig(0, 0))
    rm.transfer_node(DEFAULT_RG, "rg1", 1)
    assert rm.groups["rg1"].config == RGConfig(1, 1)  # TransferNode touches no transfer list
    assert rm.groups[DEFAULT_RG].config == RGConfig(0, 1_000_000)
    rm.recover_until_stable()
    assert sizes(rm) == {DEFAULT_RG: 1, "rg1": 1}
    with pytest.raises(MilvusError) as error:
        rm.transfer_node("rg1", DEFAULT_RG, 5)
    assert error.value.code == Code.RG_NODE_NOT_ENOUGH


# ---------------------------------------------------------------- convergence property
group_configs = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 4), st.booleans()).map(
        lambda t: (min(t[0], t[1]), max(t[0], t[1]), t[2])
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(nodes=st.integers(0, 12), configs=group_configs, default=st.tuples(st.integers(0, 3), st.integers(0, 3)),
       seed=st.integers(0, 1000))
def test_convergence_respects_requests_limits_and_conserves_nodes(
    nodes: int, configs: list[tuple[int, int, bool]], default: tuple[int, int], seed: int
) -> None:
    rm = make_rm(nodes=nodes, seed=seed)
    names = [f"rg{index}" for index in range(len(configs))]
    for name in names:
        rm.create_resource_group(name)
    rm.update_resource_groups(
        {DEFAULT_RG: RGConfig(min(default), max(default))}
        | {
            name: RGConfig(req, lim, transfer_from=(names[0],) if prefer and name != names[0] else ())
            for name, (req, lim, prefer) in zip(names, configs, strict=True)
        }
    )
    assert rm.recover_until_stable(max_passes=50) < 50, "no fixed point"
    groups = list(rm.groups.values())
    assert sum(len(rg.nodes) for rg in groups) == nodes
    for rg in groups:
        if rg.name != DEFAULT_RG:
            assert len(rg.nodes) <= rg.config.lim
        elif len(rg.nodes) > rg.config.lim:
            assert all(rm.room(other) == 0 for other in groups if other is not rg)
    if sum(rg.config.req for rg in groups) <= nodes:
        assert all(len(rg.nodes) >= rg.config.req for rg in groups)
    for rg in groups:
        if rm.missing(rg):
            assert all(len(other.nodes) <= other.config.req for other in groups if other is not rg)


# ---------------------------------------------------------------- recovery timing (resource_observer.go)
def timed_rm(nodes: int, **kwargs: Any) -> tuple[ResourceManager, FakeClock]:
    clock = FakeClock()
    rm = make_rm(nodes=nodes, clock=clock, check_interval=10.0, **kwargs)
    rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})
    rm.create_resource_group("rg1", RGConfig(1, 1))
    rm.create_resource_group("spare", RGConfig(0, 10))
    rm.recover_until_stable()
    return rm, clock


def test_config_changes_ask_for_an_observer_pass_and_nodes_move_only_then() -> None:
    rm, _ = timed_rm(nodes=2)
    rm.create_resource_group("rg2", RGConfig(1, 1))
    assert rm.rg_changed and not rm.groups["rg2"].nodes, "create only notifies"
    rm.recover()
    assert not rm.rg_changed and len(rm.groups["rg2"].nodes) == 1
    rm.update_resource_groups({"rg2": RGConfig(0, 0)})
    assert rm.rg_changed
    rm.recover()
    rm.drop_resource_group("rg2")
    assert rm.rg_changed


def test_new_node_is_assigned_at_once_without_an_observer_pass() -> None:
    rm, _ = timed_rm(nodes=1)
    rm.update_resource_groups({"rg1": RGConfig(2, 2)})
    rm.recover()
    node = rm.add_node("qn-new", "10.0.1.1:21123")
    assert rm.group_of(node) == "rg1" and not rm.rg_changed


@pytest.mark.parametrize("departure", ["stop", "crash_then_expiry", "suspend"])
def test_departures_do_not_trigger_recovery_the_group_refills_at_the_next_tick(departure: str) -> None:
    rm, clock = timed_rm(nodes=3, session_ttl=4.0)
    (member,) = rm.groups["rg1"].nodes
    tick = rm.next_check_at
    if departure == "stop":
        rm.stop_node(member)
    elif departure == "suspend":
        rm.suspend_node(member)
    else:
        rm.crash_node(member)
        clock.now += 4
        rm.advance()
        assert rm.node_gone(member)
    assert not rm.groups["rg1"].nodes and not rm.rg_changed
    clock.now = tick - 0.001
    rm.advance()
    assert not rm.groups["rg1"].nodes, "nothing refills before the tick"
    clock.now = tick
    rm.advance()
    assert len(rm.groups["rg1"].nodes) == 1 and member not in rm.groups["rg1"].nodes
    assert rm.next_check_at == tick + 10.0


def test_observer_pass_restarts_the_tick_wait() -> None:
    rm, clock = timed_rm(nodes=1)
    clock.now += 3
    rm.recover()
    assert rm.next_check_at == clock.now + 10.0


# ---------------------------------------------------------------- sessions, suspend, restart
def test_timings_default_to_the_milvus_yaml_shipped_with_2_4_to_2_6() -> None:
    rm = ResourceManager()
    assert (rm.session_ttl, rm.dist_pull_interval, rm.check_node_in_replica_interval,
            rm.graceful_stop_timeout) == (30.0, 0.5, 60.0, 1800.0)


def test_suspend_up_to_2_4_9_keeps_the_node_in_its_group_with_state_suspend() -> None:
    rm, _ = timed_rm(nodes=2, version="v2.4.9")
    (member,) = rm.groups["rg1"].nodes
    rm.suspend_node(member)
    assert rm.group_of(member) == "rg1" and rm.wire_state(rm.nodes[member]) == "Suspend"
    with pytest.raises(MilvusError) as error:
        rm.suspend_node(member)
    assert error.value.code == Code.NODE_STATE_UNEXPECTED
    rm.resume_node(member)
    assert rm.wire_state(rm.nodes[member]) == "Normal" and rm.group_of(member) == "rg1"


def test_suspend_from_2_4_10_takes_the_node_out_and_state_stays_normal() -> None:
    rm, _ = timed_rm(nodes=2, version="v2.4.10")
    (member,) = rm.groups["rg1"].nodes
    rm.suspend_node(member)
    assert rm.group_of(member) is None and rm.wire_state(rm.nodes[member]) == "Normal"
    rm.suspend_node(member)  # again: HandleNodeDown of a node in no group is fine


def test_suspend_of_crashed_or_stopping_node_succeeds_and_unknown_node_is_901() -> None:
    rm, _ = timed_rm(nodes=3)
    crashed, stopping = sorted(rm.nodes)[:2]
    rm.crash_node(crashed)
    rm.stop_node(stopping)  # holds no data: exits at once
    rm.suspend_node(crashed)
    assert rm.group_of(crashed) is None and not rm.node_gone(crashed)
    with pytest.raises(MilvusError) as error:
        rm.suspend_node(stopping)
    assert_error(error, Code.NODE_NOT_FOUND, "failed to suspend query node: node not found[node=")


def test_resume_runs_node_up_so_the_node_may_land_elsewhere() -> None:
    rm, _ = timed_rm(nodes=2)
    (member,) = rm.groups["rg1"].nodes
    rm.suspend_node(member)
    rm.recover()  # rg1 takes the spare node
    rm.resume_node(member)
    assert rm.group_of(member) == "spare"


@pytest.mark.parametrize("version", ["v2.4.9", "v2.5.16"])
def test_restart_querycoord_forgets_suspension_and_puts_nodes_back(version: str) -> None:
    rm, _ = timed_rm(nodes=2, version=version)
    (member,) = rm.groups["rg1"].nodes
    rm.suspend_node(member)
    rm.balance_suspended = True
    rm.restart_querycoord()
    assert rm.nodes[member].state is NodeState.HEALTHY and rm.group_of(member) is not None
    assert rm.wire_state(rm.nodes[member]) == "Normal" and not rm.balance_suspended


# ---------------------------------------------------------------- describe and node filters
def test_describe_leaves_out_nodes_the_filter_rejects_and_counts_only_matching_live_nodes() -> None:
    clock = FakeClock()
    rm = make_rm(clock=clock, session_ttl=5.0)
    east = rm.add_node("east", "e:1", {"MILVUS_SERVER_LABEL_ZONE": "east"})
    west = rm.add_node("west", "w:1", {"MILVUS_SERVER_LABEL_ZONE": "west"})
    rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})
    rm.create_resource_group("rg1", RGConfig(0, 2))
    rm.recover_until_stable()
    rm.update_resource_groups({"rg1": RGConfig(0, 2, node_labels=(("ZONE", "east"),))})
    info = rm.describe_resource_group("rg1")  # west is still a member until the next pass
    assert rm.groups["rg1"].nodes == {east, west}
    assert [n.node_id for n in info.nodes] == [east] and info.num_available_node == 1
    rm.crash_node(east)
    assert rm.describe_resource_group("rg1").num_available_node == 1, "a crashed node has a session until TTL"
    clock.now += 5
    assert rm.describe_resource_group("rg1").num_available_node == 0


def test_replica_nodes_are_the_groups_matching_nodes() -> None:
    clock = FakeClock()
    rm = make_rm(clock=clock)
    east = rm.add_node("east", "e:1", {"MILVUS_SERVER_LABEL_ZONE": "east"})
    west = rm.add_node("west", "w:1", {"MILVUS_SERVER_LABEL_ZONE": "west"})
    rm.create_collection("c1")
    rm.load_collection("c1", 1)
    (replica,) = rm.replicas_of("c1")
    assert replica.rw_nodes == {east, west}
    rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})
    rm.create_resource_group("rg1", RGConfig(0, 2, node_labels=(("ZONE", "east"),)))
    rm.recover_until_stable()
    rm.transfer_replica(DEFAULT_RG, "rg1", "c1", 1)
    clock.now += rm.check_node_in_replica_interval
    rm.advance()
    assert replica.rw_nodes == {east}


# ---------------------------------------------------------------- error codes
def test_update_checks_no_name_and_drop_of_a_bad_name_succeeds() -> None:
    rm = make_rm()
    with pytest.raises(MilvusError) as error:
        rm.update_resource_groups({"bad-name": RGConfig(1, 1)})
    assert_error(error, Code.RG_NOT_FOUND, "resource group not found[rg=bad-name]")
    rm.drop_resource_group("bad-name")


def test_transfer_node_errors() -> None:
    rm = make_rm(nodes=1)
    rm.create_resource_group("rg1")
    for args, code in [((DEFAULT_RG, DEFAULT_RG, 1), Code.PARAMETER_INVALID), ((DEFAULT_RG, "rg1", 0),
                       Code.PARAMETER_INVALID), (("ghost", "rg1", 1), Code.RG_NOT_FOUND),
                       ((DEFAULT_RG, "rg1", 2), Code.RG_NODE_NOT_ENOUGH)]:
        with pytest.raises(MilvusError) as error:
            rm.transfer_node(*args)
        assert error.value.code == code, args


def test_milvus_2_3_drops_configs_and_answers_65535_for_an_existing_group() -> None:
    rm = make_rm(nodes=1, version="v2.3.5")
    rm.create_resource_group("rg1", RGConfig(1, 1))
    assert rm.groups["rg1"].config == RGConfig(0, 0)
    with pytest.raises(MilvusError) as error:
        rm.create_resource_group("rg1")
    assert error.value.code == Code.UNEXPECTED


# ---------------------------------------------------------------- data: crash, reload, accounting
def test_crashed_nodes_data_is_unserved_until_expiry_plus_load_time() -> None:
    clock = FakeClock()
    rm = loaded_rm(nodes=2, clock=clock, session_ttl=60.0, load_time=5.0, check_interval=0.0)
    rm.create_collection("c1", segments=4, channels=2)
    rm.load_collection("c1", 1, ["rg1"])
    victim = max(rm.groups["rg1"].nodes, key=lambda n: len(rm.distribution(n)[1]))
    lost_segments = len(rm.distribution(victim)[1])
    lost_channels = len(rm.distribution(victim)[0])
    rm.crash_node(victim)
    assert len(rm.unserved_segments()) == lost_segments
    clock.now += 60
    assert rm.node_gone(victim)
    assert {s.segment_id for s in rm.query_segment_info("c1")} != set(rm.collections["c1"].segment_ids)
    clock.now += 5
    assert rm.unserved_segments() == []
    assert rm.unserved_segment_seconds() == pytest.approx(lost_segments * 65)
    assert rm.unserved_channel_seconds() == pytest.approx(lost_channels * 65)
    assert {s.segment_id for s in rm.query_segment_info("c1")} == set(rm.collections["c1"].segment_ids)


def test_balance_suspension_does_not_hold_the_data_on_a_read_only_node() -> None:
    """balance_checker.go `replicasToBalance` (2.4, 2.5, 2.6): stopping balance runs whatever the switch."""
    clock = FakeClock()
    rm = loaded_rm(nodes=2, clock=clock, balance_delay=1.0, check_interval=0.0)
    rm.load_collection("c1", 1, ["rg1"])
    node = next(n for n in rm.groups["rg1"].nodes if any(rm.distribution(n)))
    held = held_by(rm, node)
    rm.set_balance_suspended(True)
    rm.suspend_node(node)
    clock.now += held - 1
    assert held_by(rm, node) == 1, "one item per balance_delay, balance suspended or not"
    clock.now += 1
    assert rm.distribution(node) == ([], []) and rm.balance_suspended
    assert not rm.node_gone(node), "a suspended node keeps running"
