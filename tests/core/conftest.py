"""Hypothesis settings of the core's property tests: no per-example deadline and no generation-speed health
check (both time the machine, not the planner: a loaded CI machine must not fail a property; speed is measured
by bench/planner.py)."""

from hypothesis import HealthCheck, settings

settings.register_profile("core", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("core")
