"""Shared pytest setup: the sandbox fixtures (a fresh Kubernetes API + Milvus simulator per test)."""

pytest_plugins = ["milvus_rg_sandbox.pytest_plugin"]
