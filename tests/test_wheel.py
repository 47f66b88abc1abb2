"""`pip install .` (not editable) gives a working tool (issue 22): the wheel carries the harness's
configs and the paper's figures (setup.py, harness/paths.py).

The wheel is built from a copy of the sources a user would have, installed into a temporary venv
over this environment (torch and the other dependencies come from here; offline, no build
isolation), and run from a folder outside the checkout: `list` finds the tables, `run` a method
from its config, `table A4 --paper` the published figure, and `check` its default reference.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "harness", "baselines", "sag_model",
           "configs", "results/paper"]


def _run(args, cwd, env=None, timeout=600):
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        origin, target = REPO / name, source / name
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    wheels = tmp_path_factory.mktemp("wheels")
    built = _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
                  "--no-build-isolation", "-w", wheels, source], cwd=source)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("sag_harness-*.whl")

    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, timeout=300)
    python = venv / "bin" / "python"
    installed = _run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel], cwd=venv)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return wheel, python


def test_the_wheel_carries_configs_and_paper_figures(wheel_venv):
    wheel, _ = wheel_venv
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ["harness/_shipped/configs/sag.py", "harness/_shipped/configs/_base_/synthref.py",
                     "harness/_shipped/configs/tables/A4.py", "harness/_shipped/configs/reference/ci.json",
                     "harness/_shipped/paper/A4.csv"]:
        assert expected in names, f"{expected} is not in {wheel.name}"
    shipped = {n for n in names if n.startswith("harness/_shipped/configs/") and n.endswith(".py")}
    in_checkout = {"harness/_shipped/configs/" + str(p.relative_to(REPO / "configs"))
                   for p in (REPO / "configs").rglob("*.py")}
    assert shipped == in_checkout


@pytest.mark.slow
def test_an_installed_wheel_runs_outside_the_checkout(wheel_venv, tmp_path):
    _, python = wheel_venv
    where = _run([python, "-c", "import harness; print(harness.__file__)"], cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(python.parent.parent), where.stdout

    listing = _run([python, "-m", "harness", "list"], cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "  A4           configs/tables/A4.py" in listing.stdout

    out = tmp_path / "runs"
    run = _run([python, "-m", "harness", "run", "--methods", "maskclip@zeroshot", "--profile", "smoke", "--seeds", "0",
                "--splits", "val", "--no-progress", "--out", out], cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    record = json.loads((out / "synthref" / "maskclip@zeroshot" / "seed0" / "config.json").read_text())
    assert record["config_file"] == str(python.parent.parent / "lib" / f"python{sys.version_info.major}."
                                        f"{sys.version_info.minor}" / "site-packages" / "harness" / "_shipped"
                                        / "configs" / "maskclip.py")
    figure = json.loads((out / "synthref" / "maskclip@zeroshot" / "seed0" / "metrics.json").read_text())
    assert 0 < figure["splits"]["val"]["tau=0.50"]["mIoU"] < 100

    table = _run([python, "-m", "harness", "table", "A4", "--paper", "--format", "csv", "--results", out],
                 cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    cells = [line.split(",") for line in table.stdout.splitlines()]
    header = cells[0]
    zeroshot_val = next(c for c in cells if c[0] == "maskclip@zeroshot" and c[2] == "RefCOCO val")
    assert zeroshot_val[header.index("n")] == "1"
    assert float(zeroshot_val[header.index("paper")]) > 0, "the paper's figure was not found in the wheel"

    # The default reference is the wheel's own; a smoke run is not the ci profile, so the gate
    # refuses it by name rather than failing to find the file.
    check = _run([python, "-m", "harness", "check", "--results", out, "--only", "synthref/maskclip@zeroshot/*"],
                 cwd=tmp_path)
    assert "_shipped/configs/reference/ci.json" in check.stdout + check.stderr, check.stdout + check.stderr
