"""Packaging: the image's `run` needs the base package only, dependencies are pinned, and the two sandbox
commands take one option set."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from milvus_rg_operator.cli import build_parser as operator_parser
from milvus_rg_sandbox.options import build_parser as sandbox_parser
from milvus_rg_sandbox.options import config_from_args
from milvus_rg_sandbox.sandbox import SandboxConfig

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SANDBOX_ONLY = {"kmock", "cel-python", "jsonschema", "cryptography"}
# Top-level modules of the sandbox and of what only it needs (cel-python installs `celpy`).
SANDBOX_MODULES = ("milvus_rg_sandbox", "kmock", "celpy", "jsonschema")

# In a clean interpreter, importing any SANDBOX_MODULES raises ImportError (as in the image, where they are
# not installed) and is recorded. Then everything `run` uses is imported and its parser is built.
RUN_WITHOUT_SANDBOX = """
import importlib.abc, json, sys
blocked, attempts = {blocked!r}, []
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            attempts.append(name)
            raise ImportError(f"{{name}} is not installed", name=name)
        return None
sys.meta_path.insert(0, Block())
import milvus_rg_operator.cli as cli
import milvus_rg_operator.runner, milvus_rg_operator.handlers, milvus_rg_operator.logs, milvus_rg_operator.metrics
args = cli.build_parser("run").parse_args(["run", "--metrics-port", "0", "--log-format", "json"])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in blocked)
print(json.dumps({{"attempts": attempts, "loaded": loaded, "command": args.command}}))
"""


def requirement_pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        assert version and re.fullmatch(r"[\w.]+", version), f"{requirement} is not pinned with =="
        pins[name.lower().replace("_", "-")] = version
    return pins


def test_run_and_everything_it_imports_work_without_the_sandbox() -> None:
    script = RUN_WITHOUT_SANDBOX.format(blocked=SANDBOX_MODULES)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"attempts": [], "loaded": [], "command": "run"}


def test_the_sandbox_command_without_the_extra_names_the_extra() -> None:
    script = RUN_WITHOUT_SANDBOX.format(blocked=SANDBOX_MODULES).split("import milvus_rg_operator.cli")[0] + (
        "import milvus_rg_operator.cli as cli\ncli.main(['sandbox', '--kube-port', '0'])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2
    assert "milvus-rg-operator[sandbox]" in result.stderr


def test_sandbox_dependencies_are_an_extra_and_everything_is_pinned_in_the_lock() -> None:
    project = PYPROJECT["project"]
    base = requirement_pins(project["dependencies"])
    extras = {name: requirement_pins(reqs) for name, reqs in project["optional-dependencies"].items()}
    assert SANDBOX_ONLY.isdisjoint(base)
    assert set(extras["sandbox"]) == SANDBOX_ONLY
    lock = requirement_pins([line for line in (ROOT / "requirements-lock.txt").read_text().splitlines()
                             if line and not line.startswith("#")])
    for pins in (base, *extras.values()):
        assert {name: lock.get(name) for name in pins} == pins


def test_setup_installs_the_sandbox_extra_and_the_image_does_not() -> None:
    assert "'.[dev,sandbox]'" in (ROOT / "scripts" / "setup.sh").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs and all("[" not in line for line in installs)
    copies = [line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY")]
    assert ["operator/milvus_rg_operator"] in copies and not any("milvus_rg_sandbox" in " ".join(c) for c in copies)
    user = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER"))
    assert not user.startswith(("0", "root"))
    assert "PYTHONDONTWRITEBYTECODE=1" in dockerfile


def options(parser: argparse.ArgumentParser) -> dict[str, tuple[object, str | None]]:
    """Option string -> (default, help) of every option but -h."""
    return {option: (action.default, action.help) for action in parser._actions
            if not isinstance(action, argparse._HelpAction) for option in action.option_strings}


def sandbox_subcommand() -> argparse.ArgumentParser:
    commands = next(a for a in operator_parser("sandbox")._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["sandbox"]


def test_both_sandbox_commands_take_the_same_options() -> None:
    ours, theirs = options(sandbox_subcommand()), options(sandbox_parser())
    assert ours == theirs
    expected = {f"--{spec.name.replace('_', '-')}" for spec in dataclasses.fields(SandboxConfig)}
    assert expected | {"--query-nodes", "--workload", "--resource-groups", "--verbose", "-v"} == set(ours)


def test_every_sandbox_config_field_has_help_text() -> None:
    missing = [spec.name for spec in dataclasses.fields(SandboxConfig) if not spec.metadata.get("help")]
    assert missing == [], "give these SandboxConfig fields metadata={'help': ...}"
    assert all(help_text for _, help_text in options(sandbox_parser()).values())


@pytest.mark.parametrize("parser", [sandbox_parser, sandbox_subcommand], ids=["python -m", "milvus-rg-operator"])
def test_sandbox_options_parse_into_a_config(parser: Callable[[], argparse.ArgumentParser]) -> None:
    args = parser().parse_args(["--kube-port", "0", "--seed", "3", "--token", "none", "--workdir", "/tmp/x",
                               "--check-interval", "1", "--query-nodes", "2", "--workload", "per-group"])
    assert config_from_args(args) == SandboxConfig(kube_port=0, seed=3, token=None, workdir=Path("/tmp/x"),
                                                   check_interval=1.0)
    assert (args.query_nodes, args.workload, args.resource_groups) == (2, "per-group", "rg1,rg2")
