"""`python -m milvus_rg_sandbox`: serve the sandbox until SIGINT/SIGTERM.

The options are `milvus_rg_sandbox.options` (every `SandboxConfig` field, `--query-nodes`), the same as
`milvus-rg-operator sandbox`.
"""

from __future__ import annotations

from collections.abc import Sequence

from milvus_rg_sandbox.options import build_parser, run_from_args


def main(argv: Sequence[str] | None = None) -> int:
    return run_from_args(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
