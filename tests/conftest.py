from pathlib import Path

import pytest

from features.synthetic.generate import GenerateConfig, generate

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def small_store(tmp_path_factory) -> Path:
    """A 3,000-member synthetic store, generated once per session."""
    out = tmp_path_factory.mktemp("store")
    generate(GenerateConfig(members=3000, years=3, seed=7), out)
    return out
