"""What the service loads: the champion of each model with the spec registered with it, never today's YAML."""

from dataclasses import replace

import pytest

from umrisk.features.spec import load_spec
from umrisk.serving.state import NoChampion, load_champions


def test_the_service_serves_each_champion_with_its_registered_spec(served):
    models = load_champions(served["settings"])  # no models named: every spec that has a champion
    assert set(models) == {"readmission_30d", "admission_180d"}
    for name, m in models.items():  # the fixture registered quick specs: two tuning trials, unlike the YAML
        assert m.spec.model.tuning.n_trials == 2 != load_spec(name).model.tuning.n_trials


def test_a_named_model_without_a_champion_is_refused(served):
    with pytest.raises(NoChampion, match="umrisk-no_such_model has no champion version"):
        load_champions(replace(served["settings"], models=("no_such_model",)))
