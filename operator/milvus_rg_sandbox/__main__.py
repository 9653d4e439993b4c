"""`python -m milvus_rg_sandbox`: serve the sandbox until SIGINT/SIGTERM.

Every `SandboxConfig` field is an option (`--kube-port`, `--session-ttl`, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from milvus_rg_sandbox.sandbox import SandboxConfig, run_sandbox_forever


def _optional(kind: type) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() in ("", "none") else kind(text)

    return parse


_OPTION_TYPES: dict[str, Any] = {
    "host": str, "kube_port": int, "milvus_port": int, "management_port": int, "workdir": Path,
    "seed": _optional(int), "pod_start_delay": float, "check_interval": float, "session_ttl": float,
    "balance_delay": float, "milvus_version": str, "token": _optional(str), "namespace": str,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m milvus_rg_sandbox",
                                     description="Kubernetes API + Milvus simulator + pod/node wiring")
    defaults = SandboxConfig()
    for spec in dataclasses.fields(SandboxConfig):
        default = getattr(defaults, spec.name)
        parser.add_argument(f"--{spec.name.replace('_', '-')}", dest=spec.name, type=_OPTION_TYPES[spec.name],
                            default=default, help=f"default: {default}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    logging.basicConfig(level=logging.DEBUG if args.pop("verbose") else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_sandbox_forever(SandboxConfig(**args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
