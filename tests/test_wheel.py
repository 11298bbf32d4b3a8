"""The wheel: one top-level package, ``umrisk``, with the model specs, value sets and templates inside, and
the whole pipeline working from it in a fresh virtual environment outside the checkout (issue #6, Done when).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
SITE_PACKAGES = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

# Loading a pickled model records the modules of its classes and functions; run in the new environment.
_PICKLED_MODULES = """
import pickle, sys
from pathlib import Path
modules = set()
class Recording(pickle.Unpickler):
    def find_class(self, module, name):
        modules.add(module.split(".")[0])
        return super().find_class(module, name)
files = sorted(Path(sys.argv[1]).rglob("python_model.pkl"))
for f in files:
    with f.open("rb") as fh:
        Recording(fh).load()
print(len(files), " ".join(sorted(modules)))
"""


def _package_folders() -> dict[str, Path]:
    """Every folder with an ``__init__.py`` under the mapped folders, by the name it installs as."""
    found = {}
    for name, folder in SETUPTOOLS["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                rel = init.parent.relative_to(base).parts
                found[".".join((name, *rel))] = init.parent
    return found


def test_every_package_folder_is_in_the_wheel_list():
    """A new sub-package (say ``features/groups/``) must be listed in pyproject, or the wheel lacks it."""
    missing = sorted(set(_package_folders()) - set(SETUPTOOLS["packages"]))
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {', '.join(missing)}"


def _build_wheel(tmp: Path) -> Path:
    """Build from a copy of the sources pyproject names, so that the build leaves nothing in the checkout.

    With build isolation, as ``python -m build`` and ``pip wheel`` do by default: the environment's own
    setuptools (65, from ``venv``) predates the licence expression in pyproject.
    """
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in set(SETUPTOOLS["package-dir"].values()):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
                   check=True, capture_output=True, text=True, timeout=600)
    (wheel,) = dist.glob("umrisk-*.whl")
    return wheel


def _run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "VIRTUAL_ENV")}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_wheel_installs_alone_and_runs_the_pipeline_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"umrisk", wheel.name.split("-py")[0] + ".dist-info"}
    for spec in (ROOT / "models").glob("*.yaml"):
        assert f"umrisk/models/{spec.name}" in names
    for data in (ROOT / "features" / "valuesets").glob("*.csv"):
        assert f"umrisk/features/valuesets/{data.name}" in names
    for template in (ROOT / "training").glob("*.j2"):
        assert f"umrisk/training/{template.name}" in names

    # a new environment that sees the installed third-party packages but not the editable checkout: a .pth
    # line adds the folder to sys.path without reading the .pth files inside it (the editable finder's)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # installed before the .pth exists, so that pip never sees (or touches) the checkout's editable umrisk
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    (site / "_shared_dependencies.pth").write_text(f"{SITE_PACKAGES}\n", encoding="utf-8")

    work = tmp_path / "work"
    work.mkdir()
    where = _run([str(python), "-c", "import umrisk.features; print(umrisk.features.__file__)"], work)
    assert Path(where.stdout.strip()).is_relative_to(venv)
    for name in ("features", "training", "serving"):
        hidden = subprocess.run([str(python), "-c", f"import {name}"], cwd=work, capture_output=True, timeout=60)
        assert hidden.returncode != 0, f"import {name} works in the new environment"

    umrisk = str(venv / "bin" / "umrisk")
    _run([umrisk, "data", "generate", "--members", "1500", "--years", "3", "--out", "store"], work)
    _run([umrisk, "features", "build", "readmission_30d", "--data", "store", "--out", "f.parquet"], work)
    assert (work / "f.parquet").is_file()
    tracking = tmp_path / "tracking"
    tracking.mkdir()
    _run([umrisk, "train", "admission_180d", "--data", "store", "--tracking-uri",
          f"sqlite:///{tracking / 'mlflow.db'}"], work, timeout=900)

    # the registered model loads where only umrisk is installed, and names no top-level features/training
    pickled = _run([str(python), "-c", _PICKLED_MODULES, str(tmp_path)], work).stdout.split()
    assert int(pickled[0]) >= 1 and "umrisk" in pickled[1:]
    assert not {"features", "training", "serving"} & set(pickled[1:])
