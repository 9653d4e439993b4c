"""Leader election's settings and command line (the protocol itself runs against both API servers in
tests/integration/test_failover.py)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from milvus_rg_operator import leader
from milvus_rg_operator.cli import _lease_settings, build_parser
from milvus_rg_operator.leader import LeaseSettings


def test_lease_settings_follow_client_go_rules() -> None:
    LeaseSettings(namespace="ops", identity="me")  # controller-runtime's defaults: 15 / 10 / 2 s
    for wrong in ({"lease_duration": 10.0}, {"renew_deadline": 2.4}, {"lease_duration": 15.5},
                  {"lease_duration": 0.0, "renew_deadline": 0.0}, {"retry_period": 0.0}):
        with pytest.raises(ValueError):
            LeaseSettings(namespace="ops", identity="me", **wrong)


def test_identity_is_the_pod_name_and_a_random_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "op-7d9f-abcde")
    monkeypatch.setenv("HOSTNAME", "host")
    first, second = leader.default_identity(), leader.default_identity()
    assert first.startswith("op-7d9f-abcde_") and second.startswith("op-7d9f-abcde_") and first != second
    monkeypatch.delenv("POD_NAME")
    assert leader.default_identity().startswith("host_")


def test_lease_namespace_outside_a_pod_is_the_kubeconfig_contexts(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    monkeypatch.setattr(leader, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "absent")
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "milvus-ops"}}],
              "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1"}}],
              "users": [{"name": "u", "user": {"token": "t"}}]}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert leader.default_lease_namespace() == "milvus-ops"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert leader.default_lease_namespace() == "default"
    in_pod = tmp_path / "namespace"
    in_pod.write_text("operators\n")
    monkeypatch.setattr(leader, "SERVICE_ACCOUNT_NAMESPACE", in_pod)
    assert leader.default_lease_namespace() == "operators"


def test_run_elects_a_leader_by_default_with_controller_runtime_durations() -> None:
    parser = build_parser("run")
    args = parser.parse_args(["run", "--leader-election-namespace", "ops"])
    _lease_settings(parser, args)
    assert args.lease == LeaseSettings(namespace="ops", identity=args.lease.identity, name="milvus-rg-operator",
                                       lease_duration=15, renew_deadline=10, retry_period=2)
    args = parser.parse_args(["run", "--no-leader-election"])
    _lease_settings(parser, args)
    assert args.lease is None


def test_run_refuses_durations_that_let_two_replicas_lead(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser("run")
    args = parser.parse_args(["run", "--leader-election-namespace", "ops", "--lease-duration", "5",
                              "--renew-deadline", "5"])
    with pytest.raises(SystemExit):
        _lease_settings(parser, args)
    assert "longer than the renew deadline" in capsys.readouterr().err


def test_lease_times_are_micro_times() -> None:
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, 67, tzinfo=datetime.UTC)
    assert leader.micro_time(moment) == "2026-01-02T03:04:05.000067Z"
