"""Simulated providers for demos and load tests: deterministic answers from a seed, log-normal
latency and optional faults. Everything they produce is marked `source = sandbox`."""

from tam.adapters.sandbox.providers import (
    SandboxBehaviour,
    SandboxCompanySource,
    SandboxEmailFinder,
    SandboxLinkedinChecker,
    SandboxPersonSearch,
    SandboxQualifier,
    SandboxUsageForecaster,
)

__all__ = [
    "SandboxBehaviour",
    "SandboxCompanySource",
    "SandboxEmailFinder",
    "SandboxLinkedinChecker",
    "SandboxPersonSearch",
    "SandboxQualifier",
    "SandboxUsageForecaster",
]
