"""pandas stays out of the operator's process (33 MB of RSS) while the operator does all it does with
Milvus, and pymilvus' own pandas paths still get the real pandas. Each case runs in a fresh interpreter:
this one has long imported pandas."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any


def run_fresh(script: str) -> Any:
    """Run `script` in a new interpreter; it prints one JSON document as its last line."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_operator_uses_milvus_without_importing_pandas() -> None:
    """Every call of the Milvus adapter, over real gRPC and HTTP to the simulator, and pandas is still
    deferred. Fails when a pymilvus upgrade reads another pandas name as it is imported (the real pandas
    would then be imported: add the name to DEFERRED_CLASSES or DEFERRED_FUNCTIONS)."""
    result = run_fresh("""
        import asyncio, json, sys
        import milvus_rg_operator.runner  # the modules `milvus-rg-operator run` imports
        from milvus_rg_operator.adapters import deferred_pandas
        from milvus_rg_operator.adapters.milvus import PymilvusGateway
        from milvus_rg_operator.core.types import GroupConfig
        from milvus_rg_sandbox.milvus.simulator import MilvusSimulator

        async def main():
            async with MilvusSimulator(grpc_port=0, management_port=0, seed=7) as sim:
                node = sim.add_node("querynode-0", "127.0.0.1:21123")
                gateway = PymilvusGateway(sim.uri, management_uri=sim.management_url)
                try:
                    await gateway.server_version()
                    await gateway.create_group("rg_a", GroupConfig(0, 0))
                    await gateway.update_groups({"rg_a": GroupConfig(0, 1)})
                    await gateway.suspend_node(node)
                    await gateway.distribution(node)
                    await gateway.resume_node(node)
                    state = await gateway.observe()
                    await gateway.update_groups({"rg_a": GroupConfig(0, 0)})
                    await gateway.drop_group("rg_a")
                finally:
                    await gateway.close()
            return sorted(state.groups)

        groups = asyncio.run(main())
        real_pandas = [name for name, module in sys.modules.items()
                       if name.startswith("pandas.") and name != deferred_pandas.PANDAS_TYPES]
        print(json.dumps({"deferred": deferred_pandas.is_deferred(), "real": real_pandas, "groups": groups}))
    """)
    assert "rg_a" in result["groups"]
    assert result["deferred"] is True and result["real"] == []


def test_pymilvus_pandas_paths_get_the_real_pandas() -> None:
    """The deferred names behave as pandas': functions called through, classes built and checked,
    submodules imported, after pymilvus took the stand-ins."""
    result = run_fresh("""
        import json
        from milvus_rg_operator.adapters import deferred_pandas
        from milvus_rg_operator.adapters import milvus  # installs the stand-ins, then imports pymilvus
        from pymilvus.orm import schema, types

        rows_before = schema.is_valid_insert_data([{"id": 1}])  # isinstance(data, pd.DataFrame): False
        deferred_before = deferred_pandas.is_deferred()
        one_class = schema.pd.DataFrame is schema.pd.DataFrame
        dtype = types.infer_dtype_bydata(1.5)  # calls pandas.api.types.is_scalar and infer_dtype
        deferred_after_call = deferred_pandas.is_deferred()

        import pandas
        import pandas.io.json
        frame = pandas.DataFrame({"id": [1]})
        print(json.dumps({
            "rows_before": rows_before, "deferred_before": deferred_before, "one_class": one_class,
            "dtype": dtype.name,
            "deferred_after_call": deferred_after_call,
            "frame_is_dataframe": isinstance(frame, schema.pd.DataFrame),
            "frame_valid": schema.is_valid_insert_data(frame),
            "real_dataframe": type(frame).__module__.startswith("pandas"),
            "io_json": hasattr(pandas.io.json, "read_json"),
        }))
    """)
    assert result == {
        "rows_before": True, "deferred_before": True, "one_class": True, "dtype": "DOUBLE",
        "deferred_after_call": False,
        "frame_is_dataframe": True, "frame_valid": True, "real_dataframe": True, "io_json": True,
    }


def test_pandas_imported_first_is_left_alone() -> None:
    result = run_fresh("""
        import json, sys
        import pandas
        from milvus_rg_operator.adapters import deferred_pandas
        deferred_pandas.defer_pandas()
        print(json.dumps({"same": sys.modules["pandas"] is pandas, "deferred": deferred_pandas.is_deferred()}))
    """)
    assert result == {"same": True, "deferred": False}
