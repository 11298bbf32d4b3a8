"""Model specs adjusted for tests and benchmarks."""

from __future__ import annotations

from umrisk.features.spec import ModelSpec, load_spec


def quick(name: str, **gates) -> ModelSpec:
    """The spec with a small tuning budget (and gates overridden) so a model trains in seconds."""
    spec = load_spec(name)
    model = spec.model.model_copy(update={
        "tuning": spec.model.tuning.model_copy(update={"n_trials": 2, "timeout_seconds": 20}),
        "gates": spec.model.gates.model_copy(update=gates)})
    return spec.model_copy(update={"model": model})
