"""The `milvus-rg-operator` command: run, sandbox, demo, plan, crds.

This is the only module of the operator that may import the sandbox (to start it); the planning and
reconcile code never does, so the two sides of the wire cannot share a misunderstanding.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from milvus_rg_operator.runner import run_operator

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_operator(namespace=args.namespace, liveness_endpoint=args.liveness))
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from milvus_rg_sandbox.sandbox import SandboxConfig, run_sandbox_forever

    config = SandboxConfig(
        kube_port=args.kube_port, milvus_port=args.milvus_port, management_port=args.management_port,
        workdir=Path(args.workdir), seed=args.seed, check_interval=args.check_interval,
    )
    asyncio.run(run_sandbox_forever(config, query_nodes=args.query_nodes))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from milvus_rg_operator.demo import run_demo

    return asyncio.run(run_demo(examples=Path(args.examples), workdir=Path(args.workdir),
                                step_timeout=args.step_timeout, seed=args.seed))


def _plan(args: argparse.Namespace) -> int:
    from milvus_rg_operator.dryrun import run_plan

    return asyncio.run(run_plan([Path(f) for f in args.filename], milvus_uri=args.milvus,
                                token=args.token, current_replicas=args.replicas))


def _crds(args: argparse.Namespace) -> int:
    from milvus_rg_operator.api.crds import render_crds_yaml

    sys.stdout.write("---\n".join(render_crds_yaml().values()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="milvus-rg-operator",
        description="Declarative Milvus resource groups and safe query-node scaling on Kubernetes.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator (KUBECONFIG or in-cluster config)")
    run.add_argument("-n", "--namespace", help="watch only this namespace (default: all namespaces)")
    run.add_argument("--liveness", help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(func=_run)

    sandbox = commands.add_parser("sandbox", help="run the embedded Kubernetes API + Milvus simulator")
    sandbox.add_argument("--kube-port", type=int, default=18443)
    sandbox.add_argument("--milvus-port", type=int, default=19530)
    sandbox.add_argument("--management-port", type=int, default=9091)
    sandbox.add_argument("--workdir", default=".sandbox", help="where the kubeconfig is written")
    sandbox.add_argument("--query-nodes", type=int, default=1,
                         help="replicas of the query-node StatefulSet milvus-querynode created at start (0: none)")
    sandbox.add_argument("--seed", type=int, default=None, help="seed Milvus's random node choice")
    sandbox.add_argument("--check-interval", type=float, default=10.0,
                         help="Milvus's resource-group check interval in seconds")
    sandbox.set_defaults(func=_sandbox)

    demo = commands.add_parser("demo", help="the Milvus docs' scaling practice, step by step, on the sandbox")
    demo.add_argument("--examples", default=str(Path("examples")), help="folder of numbered step folders")
    demo.add_argument("--workdir", default=".sandbox")
    demo.add_argument("--step-timeout", type=float, default=60.0)
    demo.add_argument("--seed", type=int, default=None)
    demo.set_defaults(func=_demo)

    plan = commands.add_parser("plan", help="dry run: the Milvus config batch and replica change to make")
    plan.add_argument("-f", "--filename", action="append", required=True,
                      help="QueryNodePool / ResourceGroup manifests (file or folder; repeatable)")
    plan.add_argument("--milvus", help="read the current state from this Milvus (e.g. http://host:19530)")
    plan.add_argument("--token", default="", help="Milvus token or user:password")
    plan.add_argument("--replicas", type=int, default=None, help="current StatefulSet replicas")
    plan.set_defaults(func=_plan)

    crds = commands.add_parser("crds", help="print the CustomResourceDefinitions (crds/ equals this)")
    crds.set_defaults(func=_crds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
