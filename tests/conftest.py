from pathlib import Path

import pytest

from umrisk.features.synthetic.generate import GenerateConfig, generate


@pytest.fixture(scope="session")
def small_store(tmp_path_factory) -> Path:
    """A 3,000-member synthetic store, generated once per session."""
    out = tmp_path_factory.mktemp("store")
    generate(GenerateConfig(members=3000, years=3, seed=7), out)
    return out
