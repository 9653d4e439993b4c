"""The `milvus-rg-operator` command: run, sandbox, demo, plan, crds.

This is the only module of the operator that may import the sandbox (to start it); the planning and
reconcile code never does, so the two sides of the wire cannot share a misunderstanding.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from milvus_rg_operator.constants import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_LEASE_NAME,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RETRY_PERIOD,
)
from milvus_rg_operator.logs import LOG_FORMATS, LOG_LEVELS, configure_logging

DEFAULT_METRICS_PORT = 8080


def _run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format, verbose=args.verbose)
    if not args.leader_election:
        from milvus_rg_operator.runner import run_operator

        asyncio.run(run_operator(namespace=args.namespace, liveness_endpoint=args.liveness,
                                 metrics_port=args.metrics_port))
        return 0
    from milvus_rg_operator import leader

    try:
        asyncio.run(leader.run_operator_elected(args.lease, namespace=args.namespace, liveness_endpoint=args.liveness,
                                                metrics_port=args.metrics_port))
    except leader.LeadershipLost as exc:
        logging.getLogger("milvus_rg_operator.leader").error("%s: exiting, to restart as a follower", exc)
        logging.shutdown()
        os._exit(1)  # crash-only, at once: a thread still blocked in an API call must not delay the exit
    return 0


def _lease_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """args.lease: the LeaseSettings of `run` with leader election (None without)."""
    args.lease = None
    if args.command != "run" or not args.leader_election:
        return
    from milvus_rg_operator import leader

    try:
        args.lease = leader.LeaseSettings(
            namespace=args.leader_election_namespace or leader.default_lease_namespace(),
            identity=leader.default_identity(), name=args.lease_name, lease_duration=args.lease_duration,
            renew_deadline=args.renew_deadline, retry_period=args.retry_period)
    except ValueError as exc:
        parser.error(str(exc))


def _sandbox(args: argparse.Namespace) -> int:
    from milvus_rg_sandbox.options import run_from_args

    return run_from_args(args)


def _demo(args: argparse.Namespace) -> int:
    from milvus_rg_operator.demo import run_demo

    return asyncio.run(run_demo(examples=Path(args.examples), workdir=Path(args.workdir),
                                step_timeout=args.step_timeout, seed=args.seed, milvus_version=args.milvus_version))


def _plan(args: argparse.Namespace) -> int:
    from milvus_rg_operator.dryrun import run_plan

    return asyncio.run(run_plan([Path(f) for f in args.filename], milvus_uri=args.milvus,
                                token=args.token, replicas=args.replicas, cluster=args.cluster))


def _crds(args: argparse.Namespace) -> int:
    from milvus_rg_operator.api.crds import render_crds_yaml

    sys.stdout.write("---\n".join(render_crds_yaml().values()))
    return 0


def _add_sandbox_options(parser: argparse.ArgumentParser) -> None:
    try:
        from milvus_rg_sandbox.options import add_sandbox_options
    except ImportError as exc:
        parser.error(f"the sandbox is not installed ({exc.name} missing): "
                     "pip install 'milvus-rg-operator[sandbox]'")
    add_sandbox_options(parser)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line. The sandbox's options are added only when `command` is "sandbox": they come
    from the sandbox package, which `run` never imports (the image does not contain it)."""
    parser = argparse.ArgumentParser(
        prog="milvus-rg-operator",
        description="Declarative Milvus resource groups and safe query-node scaling on Kubernetes.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator (KUBECONFIG or in-cluster config)")
    run.add_argument("-n", "--namespace", help="watch only this namespace (default: all namespaces)")
    run.add_argument("--liveness", help="serve kopf's liveness probe, e.g. http://0.0.0.0:8081/healthz")
    run.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT,
                     help=f"serve Prometheus metrics at /metrics on this port (0: off; default {DEFAULT_METRICS_PORT})")
    run.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                     help="text lines or one JSON object per line (default: text)")
    run.add_argument("--log-level", choices=LOG_LEVELS, default="INFO", type=str.upper,
                     help="INFO: one line per write; DEBUG adds the plan of every pass (default: INFO)")
    run.add_argument("-v", "--verbose", action="store_true", help="DEBUG, with kopf's own per-event lines")
    election = run.add_argument_group(
        "leader election", "of several replicas, only the one holding a coordination.k8s.io Lease acts; on by "
        "default, so a second operator (another replica, a local run against the cluster) waits instead of acting "
        "too")
    election.add_argument("--leader-election", action=argparse.BooleanOptionalAction, default=True,
                          help="wait for the Lease before running (default: on)")
    election.add_argument("--leader-election-namespace", default=None,
                          help="the Lease's namespace (default: the pod's own; outside a pod the kubeconfig "
                               "context's, else default)")
    election.add_argument("--lease-name", default=DEFAULT_LEASE_NAME,
                          help=f"one Lease per operator installation (default: {DEFAULT_LEASE_NAME})")
    election.add_argument("--lease-duration", type=float, default=DEFAULT_LEASE_DURATION,
                          help="seconds a follower waits, from the Lease's last change it saw, before taking it "
                               f"over (whole seconds; default {DEFAULT_LEASE_DURATION:g})")
    election.add_argument("--renew-deadline", type=float, default=DEFAULT_RENEW_DEADLINE,
                          help="seconds the leader retries a renewal before it stops leading "
                               f"(default {DEFAULT_RENEW_DEADLINE:g})")
    election.add_argument("--retry-period", type=float, default=DEFAULT_RETRY_PERIOD,
                          help=f"seconds between tries to acquire or renew (default {DEFAULT_RETRY_PERIOD:g})")
    run.set_defaults(func=_run)

    sandbox = commands.add_parser("sandbox", help="run the embedded Kubernetes API + Milvus simulator "
                                                  "(needs milvus-rg-operator[sandbox])")
    if command == "sandbox":
        _add_sandbox_options(sandbox)
    sandbox.set_defaults(func=_sandbox)

    demo = commands.add_parser("demo", help="the Milvus docs' scaling practice, step by step, on the sandbox")
    demo.add_argument("--examples", default=str(Path("examples")), help="folder of numbered step folders")
    demo.add_argument("--workdir", default=".sandbox")
    demo.add_argument("--step-timeout", type=float, default=60.0)
    demo.add_argument("--seed", type=int, default=None)
    demo.add_argument("--milvus-version", default=None,
                      help="the Milvus version the sandbox plays, e.g. v2.4.23 or v2.6.20 (streaming nodes; default: "
                           "the sandbox's)")
    demo.set_defaults(func=_demo)

    plan = commands.add_parser("plan", help="dry run: every write the operator would make, with its reason")
    plan.add_argument("-f", "--filename", action="append", required=True,
                      help="QueryNodePool / ResourceGroup manifests (file or folder; repeatable)")
    plan.add_argument("--milvus", help="read the current state from this Milvus (e.g. http://host:19530); "
                                       "default: a new Milvus with only its default group")
    plan.add_argument("--token", default=None,
                      help="Milvus token or user:password (stands for the pool's Secret)")
    plan.add_argument("--cluster", action="store_true",
                      help="read the StatefulSet, its pods and the pool's Secret from the current kube context")
    plan.add_argument("--replicas", type=int, default=None,
                      help="without --cluster: the StatefulSet's current replicas (default 0)")
    plan.set_defaults(func=_plan)

    crds = commands.add_parser("crds", help="print the CustomResourceDefinitions (crds/ equals this)")
    crds.set_defaults(func=_crds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    _lease_settings(parser, args)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
