"""The RSS of `milvus-rg-operator run` itself: the product's command in a process of its own.

`operator_scale` and `churn` run the operator inside the bench's process, so their RSS carries the bench's
own bookkeeping too. Here the sandbox runs in one child (`cluster.py serve`, 1 query-node pod), the
operator in another (`milvus-rg-operator run -n default --metrics-port 0`, what the chart runs), and this
process only applies the CRDs, a pool and its groups (requests summing to `--pods`, 20 groups) and reads
/proc. Printed: the operator's RSS once it answers its liveness probe, when the pool is Ready, and over
`--hold` seconds after that (sampled every second: the largest and the last), and whether pandas was
ever mapped into it (pymilvus imports it; the operator defers it: adapters/deferred_pandas.py).

Target: RSS <= 150 MB at 1,000 pods (the largest sample after Ready).
Run: `python bench/operator_process.py [--pods 1000] [--hold 30]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import (
    NAMESPACE,
    group_manifest,
    pool_is_ready,
    pool_manifest,
    rss_mib,
    sandbox_process,
    stop_process,
    wait_until,
)
from operator_scale import groups_for

RSS_TARGET_MB = 150.0
OPERATOR = Path(sys.executable).with_name("milvus-rg-operator")


def maps_pandas(pid: int) -> bool:
    return f"{os.sep}pandas{os.sep}" in Path(f"/proc/{pid}/maps").read_text()


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def spawn_operator(log_path: Path, liveness: str) -> subprocess.Popen[bytes]:
    """The chart's command (KUBECONFIG from the environment), its output to `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen([str(OPERATOR), "run", "-n", NAMESPACE, "--metrics-port", "0",
                                 "--liveness", liveness], stdout=log, stderr=subprocess.STDOUT)


async def measure(pods: int, hold: float, workdir: Path) -> int:
    from milvus_rg_operator.adapters.kube import new_api_client
    from milvus_rg_operator.api.crds import render_crds
    from milvus_rg_operator.manifests import apply_manifests
    from milvus_rg_sandbox.realkube.control_plane import free_port

    async with sandbox_process(workdir / "sandbox", query_nodes=1) as sandbox:
        os.environ["KUBECONFIG"] = sandbox.endpoints["kubeconfig"]
        api = new_api_client()
        await apply_manifests(api, render_crds())
        liveness = f"http://127.0.0.1:{free_port()}/healthz"
        operator = spawn_operator(workdir / "operator.log", liveness)
        try:
            await wait_until(lambda: asyncio.to_thread(answers, liveness), timeout=60, interval=0.2,
                             what="the operator's liveness probe")
            started_mb = rss_mib(operator.pid)

            groups = groups_for(pods)
            await apply_manifests(api, [pool_manifest(sandbox.endpoints),
                                        *(group_manifest(name, n) for name, n in groups)], NAMESPACE)
            ready_s = await wait_until(lambda: pool_is_ready(api), timeout=300, interval=0.2, what=f"{pods} pods Ready")
            ready_mb = rss_mib(operator.pid)
            samples = []
            deadline = time.monotonic() + hold
            while time.monotonic() < deadline:  # a sampling period, not a wait for a condition
                await asyncio.sleep(1.0)
                samples.append(rss_mib(operator.pid))
            pandas = maps_pandas(operator.pid)
        finally:
            stop_process(operator, timeout=30)
            api.close()
    largest = max(samples)
    print(f"`milvus-rg-operator run` in a process of its own, {pods:,} pods in {len(groups)} groups "
          f"(sandbox in another)")
    print("   pods | started MB | Ready s | at Ready MB | largest MB | last MB | pandas mapped | target")
    verdict = ("met" if largest <= RSS_TARGET_MB else "MISSED") if pods == 1_000 else ""
    print(f" {pods:>6,} | {started_mb:>10.1f} | {ready_s:>7.1f} | {ready_mb:>11.1f} | {largest:>10.1f} | "
          f"{samples[-1]:>7.1f} | {'yes' if pandas else 'no':>13} | "
          f"{f'RSS <= {RSS_TARGET_MB:.0f} MB: {verdict}' if verdict else ''}")
    print(f"largest and last: over {hold:.0f} s after Ready, sampled every second")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=1_000)
    parser.add_argument("--hold", type=float, default=30.0, help="seconds of RSS samples after Ready")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="operator-process-") as workdir:
        return asyncio.run(measure(args.pods, args.hold, Path(workdir)))


if __name__ == "__main__":
    sys.exit(main())
