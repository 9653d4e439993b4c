"""The sandbox's command-line options, in one place: `python -m milvus_rg_sandbox` and
`milvus-rg-operator sandbox` both add them with `add_sandbox_options`.

Every `SandboxConfig` field is an option (`kube_port` -> `--kube-port`) whose help text is the field's
`metadata["help"]`; `--query-nodes`, `--workload` and `--resource-groups` are not config fields (query
nodes to operate on, created after the start, in one of the shapes of `milvus_rg_sandbox.shapes`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from milvus_rg_sandbox.sandbox import SandboxConfig, run_sandbox_forever
from milvus_rg_sandbox.shapes import SHAPES

DEFAULT_QUERY_NODES = 0
DEFAULT_RESOURCE_GROUPS = "rg1,rg2"
# options of the command that are not SandboxConfig fields
NOT_CONFIG = ("query_nodes", "workload", "resource_groups", "verbose")
_NONE_WORDS = ("", "none")


class MissingHelp(TypeError):
    """A SandboxConfig field without `metadata={"help": ...}`: every option explains itself."""


def _scalar_parser(kind: Any) -> Callable[[str], Any]:
    if kind in (int, float, str, Path):
        return typing.cast(Callable[[str], Any], kind)
    raise TypeError(f"no command-line parser for type {kind!r}: extend milvus_rg_sandbox.options")


def _option_kwargs(kind: Any, default: Any) -> dict[str, Any]:
    """argparse keywords for a field type: scalars, `X | None` ("none" gives None), bool (a switch, off by
    default), Literal."""
    if kind is bool:
        if default is not False:
            raise TypeError("a bool SandboxConfig field is a switch: it must default to False")
        return {"action": "store_true"}
    if typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        return {"type": type(choices[0]), "choices": choices}
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"no command-line parser for type {kind!r}")
        parse = _scalar_parser(inner[0])

        def optional(text: str) -> Any:
            return None if text.lower() in _NONE_WORDS else parse(text)

        optional.__name__ = getattr(inner[0], "__name__", "value")  # argparse names the type in errors
        return {"type": optional}
    return {"type": _scalar_parser(kind)}


def add_sandbox_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add every SandboxConfig field, `--query-nodes`, `--workload`, `--resource-groups` and `-v/--verbose`."""
    hints = typing.get_type_hints(SandboxConfig)
    defaults = SandboxConfig()
    for spec in dataclasses.fields(SandboxConfig):
        help_text = spec.metadata.get("help")
        if not help_text:
            raise MissingHelp(f"SandboxConfig.{spec.name} has no metadata={{'help': ...}}")
        default = getattr(defaults, spec.name)
        parser.add_argument(f"--{spec.name.replace('_', '-')}", dest=spec.name, default=default,
                            help=f"{help_text} (default: {default})", **_option_kwargs(hints[spec.name], default))
    parser.add_argument("--query-nodes", type=int, default=DEFAULT_QUERY_NODES,
                        help="query nodes created at start, in the --workload shape (per group for per-group; "
                             f"0: none; default: {DEFAULT_QUERY_NODES})")
    parser.add_argument("--workload", choices=SHAPES, default=SHAPES[0],
                        help="how the query nodes run: a StatefulSet milvus-querynode, the Milvus Helm chart's "
                             "Deployment, a Milvus CR of milvus-operator (its stand-in), or one chart Deployment "
                             f"per resource group (default: {SHAPES[0]})")
    parser.add_argument("--resource-groups", default=DEFAULT_RESOURCE_GROUPS,
                        help="the resource groups of --workload per-group, comma-separated "
                             f"(default: {DEFAULT_RESOURCE_GROUPS})")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def build_parser(prog: str = "python -m milvus_rg_sandbox") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Kubernetes API + Milvus simulator + pod/node wiring")
    return add_sandbox_options(parser)


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The SandboxConfig the parsed options describe (the NOT_CONFIG options aside)."""
    return SandboxConfig(**{spec.name: getattr(args, spec.name) for spec in dataclasses.fields(SandboxConfig)})


def run_from_args(args: argparse.Namespace) -> int:
    """Serve the sandbox the parsed options describe until SIGINT/SIGTERM (both commands end here)."""
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # a line per request otherwise
    groups = tuple(group.strip() for group in args.resource_groups.split(",") if group.strip())
    asyncio.run(run_sandbox_forever(config_from_args(args), query_nodes=args.query_nodes, workload=args.workload,
                                    resource_groups=groups))
    return 0
