"""Run every benchmark script in bench/ (each in its own process) and print its output.

Exits 1 if any of them fails.  Run: `python bench/run_all.py` (or `make bench`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for script in sorted(BENCH.glob("*.py")):
        if script.name == Path(__file__).name or script.name.startswith("_"):
            continue
        print(f"=== {script.name}", flush=True)
        result = subprocess.run([sys.executable, str(script)], cwd=BENCH.parent, capture_output=True, text=True,
                                check=False)
        print(result.stdout, end="", flush=True)
        if result.returncode != 0:
            failed.append(script.name)
            print(result.stderr[-4000:], end="", file=sys.stderr)
            print(f"--- {script.name} exited {result.returncode}", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
