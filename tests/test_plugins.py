"""harness/plugins.py and harness/registry.py: methods from outside the harness (issue 22).

In process: a centred-disc method written in tmp_path reaches the registry by a config's
`custom_imports` (with the harness's `_base_`), by `--include` and by SAG_HARNESS_INCLUDE; its figures
are checked against numpy; a config that disagrees with the method asked for, an unknown `--set`
key and a broken module are one-line errors (exit 2); a user table `_base_`s A4 and adds a row.
As a user would: examples/textpatch is pip-installed into a temporary venv and found by its entry
point (`list`, `run --profile smoke`, a user table), and a broken installed plugin exits 2.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness import plugins, registry
from harness.cli import main
from harness.config import config_hash
from harness.errors import ConfigError
from harness.overrides import apply_override
from tests.refer_fixture import hand_metrics

REPO = Path(__file__).resolve().parent.parent
RADIUS = 0.25     # the disc's radius, as a fraction of the image's shorter side

DISC_METHOD = f'''
from pathlib import Path
import torch
from harness.registry import SEGMENTERS
from harness.segmenter import Segmenter

@SEGMENTERS.register_module("disc")
class CentredDisc(Segmenter):
    """A disc at the image centre, at each image's own size; ignores the words."""
    CONFIG_DIR = Path(__file__).parent

    def predict(self, images, texts, samples=None):
        maps = []
        for s in samples:
            y, x = torch.meshgrid(torch.arange(s.height) + 0.5, torch.arange(s.width) + 0.5, indexing="ij")
            r = ((y - s.height / 2) ** 2 + (x - s.width / 2) ** 2).sqrt()
            maps.append((r <= {RADIUS} * min(s.height, s.width)).float())
        return maps
'''
DISC_CONFIG = """
custom_imports = dict(imports=['disc_method'])
_base_ = ['_base_/synthref.py']
method = dict(type='disc', finetune=False)
protocol = dict(minmax=False)
"""


@pytest.fixture
def clean_registry(monkeypatch):
    """The registry as it was before the test (a method registered here leaves with it)."""
    registry.load_methods()
    monkeypatch.setattr(registry.SEGMENTERS, "_module_dict", dict(registry.SEGMENTERS.module_dict))
    for name in ("_origins", "_failures"):
        monkeypatch.setattr(registry, name, dict(getattr(registry, name)))
    monkeypatch.setattr(registry, "_imported", set(registry._imported))
    from harness.report import table_specs

    monkeypatch.setattr(table_specs, "_USER_TABLES", dict(table_specs._USER_TABLES))   # user tables leave too
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv(plugins.INCLUDE_ENV, raising=False)
    for module in [m for m in sys.modules if m == "disc_method" or m.startswith("_sag_harness_include_")]:
        monkeypatch.delitem(sys.modules, module)


@pytest.fixture
def disc(tmp_path):
    """(method file, config file in another folder) of the centred-disc method."""
    (tmp_path / "plugin").mkdir()
    (tmp_path / "cfgs").mkdir()
    method = tmp_path / "plugin" / "disc_method.py"
    method.write_text(DISC_METHOD)
    (tmp_path / "plugin" / "disc.py").write_text(DISC_CONFIG.replace("custom_imports", "_no_imports"))
    config = tmp_path / "cfgs" / "my_disc.py"
    config.write_text(DISC_CONFIG)
    return method, config


def disc_by_hand(split="val", limit=None):
    from harness.data.datasets import open_split

    dataset = open_split("synthref", split, limit=limit)
    preds, gts = [], []
    for i, s in enumerate(dataset.samples):
        y, x = np.mgrid[0:s.height, 0:s.width] + 0.5
        preds.append(np.hypot(y - s.height / 2, x - s.width / 2) <= RADIUS * min(s.height, s.width))
        gts.append(dataset.mask(i))
    return hand_metrics(preds, gts)


def test_config_anywhere_imports_its_method_and_takes_the_harness_base(disc, clean_registry, tmp_path,
                                                                       monkeypatch, capsys):
    method, config = disc
    monkeypatch.syspath_prepend(str(method.parent))
    out = tmp_path / "runs"
    code = main(["run", "--config", str(config), "--seeds", "0", "--splits", "val", "--limit", "24",
                 "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    run = out / "synthref" / "disc" / "seed0"
    metrics = json.loads((run / "metrics.json").read_text())["splits"]["val"]["tau=0.50"]
    assert metrics["mIoU"] == pytest.approx(disc_by_hand(limit=24)["mIoU"], abs=1e-4)
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["train"]["max_steps"] == 300            # the common budget, from _base_
    assert record["config"]["runtime"]["torch_threads"] == 2
    origin = record["method_origin"]
    assert origin["route"] == f"custom_imports of {config}" and origin["module"] == "disc_method"
    assert origin["sha256"] == plugins.source_digest(sys.modules["disc_method"]) == record["method_code"]["sha256"]


def test_an_edited_plugin_is_another_run(disc, clean_registry, monkeypatch):
    method, _ = disc
    monkeypatch.syspath_prepend(str(method.parent))
    module = __import__("disc_method")
    before = plugins.source_digest(module)
    method.write_text(DISC_METHOD.replace(str(RADIUS), "0.3"))
    after = plugins.source_digest(module)
    assert before != after
    cfg = {"method": {"type": "disc"}}
    assert config_hash(cfg, "synthref", "full", code={"sha256": before}) != \
        config_hash(cfg, "synthref", "full", code={"sha256": after}) != config_hash(cfg, "synthref", "full")


@pytest.mark.parametrize("methods, named", [
    ("whole", "method.type='disc' but --methods asks for 'whole'"),      # the trap of issue 22
    ("disc,objects", "asks for 'objects'"),
])
def test_a_config_serves_the_method_its_type_names(disc, clean_registry, tmp_path, monkeypatch, capsys,
                                                   methods, named):
    method, config = disc
    monkeypatch.syspath_prepend(str(method.parent))
    code = main(["run", "--methods", methods, "--config", str(config), "--out", str(tmp_path / "runs")])
    assert code == 2 and named in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_config_without_type_serves_one_method_only(tmp_path, capsys):
    config = tmp_path / "untyped.py"
    config.write_text("_base_ = ['_base_/synthref.py']\nmethod = dict(finetune=False)\n")
    code = main(["run", "--methods", "whole,objects", "--config", str(config), "--out", str(tmp_path)])
    assert code == 2 and "names no method.type, but --methods asks for whole, objects" in capsys.readouterr().err


def test_include_path_and_environment_route(disc, clean_registry, monkeypatch, capsys):
    method, _ = disc
    assert main(["list", "--include", str(method)]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("  disc "))
    assert line.endswith(f"disc_method.py:CentredDisc  [--include {method}]")
    assert registry.origin("disc").sha256 == plugins.source_digest(sys.modules[registry.SEGMENTERS.get("disc").__module__])


def test_environment_include(disc, clean_registry, monkeypatch, capsys):
    method, _ = disc
    monkeypatch.setenv(plugins.INCLUDE_ENV, os.pathsep.join(["", str(method)]))
    monkeypatch.setattr(registry, "_loaded", False)
    assert main(["list"]) == 0
    assert next(l for l in capsys.readouterr().out.splitlines()
                if l.startswith("  disc ")).endswith(f"[{plugins.INCLUDE_ENV} {method}]")


def test_a_broken_module_is_named_with_its_route_and_hides_no_other(disc, clean_registry, tmp_path, capsys):
    method, _ = disc
    broken = tmp_path / "broken_method.py"
    broken.write_text("import no_such_dependency_xyz\n")
    empty = tmp_path / "empty_method.py"
    empty.write_text("X = 1\n")
    code = main(["list", "--include", str(broken), "--include", str(method), "--include", str(empty)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: 2 method module(s) failed to import: ")
    assert f"{broken} (via --include): ModuleNotFoundError: No module named 'no_such_dependency_xyz'" in err
    assert f"{empty} (via --include): imported, but it registered no method" in err
    assert "methods that loaded: disc, groupvit" in err                 # the good plugin still there
    assert "  disc " in out and "(not importable via --include" in out


def test_set_of_an_unknown_key_names_its_close_matches_unless_marked_new():
    cfg = {"method": {"input_size": 64, "finetune": True}, "train": {}}
    with pytest.raises(ConfigError, match=r"no key 'method.input_sise'; did you mean 'input_size'\? "
                                          r".*write --set \+method.input_sise="):
        apply_override(cfg, "method.input_sise=32")
    apply_override(cfg, "+method.input_sise=32")
    apply_override(cfg, "train.max_steps=5")                            # optional: read when present
    assert cfg == {"method": {"input_size": 64, "finetune": True, "input_sise": 32}, "train": {"max_steps": 5}}


def test_set_unknown_key_through_the_cli(tmp_path, capsys):
    code = main(["run", "--methods", "whole", "--set", "method.nosuchkey=3", "--out", str(tmp_path)])
    assert code == 2 and "no key 'method.nosuchkey'" in capsys.readouterr().err


USER_TABLE = """
_base_ = ['A4.py']
title = 'A4 plus the disc'
rows = _base_.rows + [dict(key='disc', label='centred disc', method='disc')]
runs = _base_.runs + [dict(method='disc', seeds=[0], taus=[0.5], crf=False, profile='full')]
"""


def test_a_user_table_bases_a4_and_adds_a_row(disc, clean_registry, tmp_path, capsys):
    method, _ = disc
    table = tmp_path / "a4_plus_disc.py"
    table.write_text(USER_TABLE)
    code = main(["table", "--config", str(table), "--include", str(method), "--results",
                 str(tmp_path / "empty"), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    cells = json.loads(out)["cells"] if out.lstrip().startswith("{") else json.loads(out)
    rows = {c["row"] for c in cells}
    assert {"disc", "sag", "whole", "tseg†"} <= rows
    assert main(["list", "--include", str(method), "--table", str(table)]) == 0
    assert f"  a4_plus_disc {table.resolve()} (your spec file)" in capsys.readouterr().out


def test_run_table_file_makes_its_runs(disc, clean_registry, tmp_path, capsys):
    method, _ = disc
    table = tmp_path / "disc_table.py"
    table.write_text(textwrap.dedent("""
        title = 'disc against the whole image'
        metric = 'mIoU'
        setting = 'tau=0.50'
        rows = [dict(key='whole', method='whole'), dict(key='disc', method='disc')]
        columns = [dict(key='val', dataset='synthref', split='val')]
        runs = [dict(method='whole', seeds=[0]), dict(method='disc', seeds=[0])]
    """))
    out = tmp_path / "runs"
    code = main(["run", "--table", str(table), "--include", str(method), "--limit", "16", "--out", str(out),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    stored = json.loads((out / "synthref" / "disc" / "seed0" / "metrics.json").read_text())
    assert stored["splits"]["val"]["tau=0.50"]["mIoU"] == pytest.approx(disc_by_hand(limit=16)["mIoU"], abs=1e-4)


def test_doctor_with_no_arguments_checks_the_install(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "ready"
    assert any(line.startswith("synthref") and "val expressions" in line for line in out)


def test_score_finds_synthref_without_data_root(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", "--methods", "whole", "--seeds", "0", "--splits", "val", "--limit", "12",
                 "--out", str(out), "--save-predictions", "--no-progress"]) == 0
    stored = json.loads((out / "synthref" / "whole" / "seed0" / "metrics.json").read_text())
    predictions = next((out / "synthref" / "whole" / "seed0").rglob("val"))
    capsys.readouterr()
    assert main(["score", "--dataset", "synthref", "--split", "val", "--predictions", str(predictions),
                 "--limit", "12", "--json", str(tmp_path / "score.json")]) == 0
    scored = json.loads((tmp_path / "score.json").read_text())
    assert scored["metrics"]["mIoU"] == pytest.approx(stored["splits"]["val"]["tau=0.50"]["mIoU"], abs=1e-4)


# ------------------------------------------------------------------ installed as a user would

def venv_python(root: Path) -> Path:
    return root / "bin" / "python"


def pip_install(python: Path, *args) -> None:
    result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                             "--no-build-isolation", *map(str, args)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory):
    """A venv over this environment (so the harness and torch are there) with examples/textpatch
    installed editable, as docs/adding_a_method.md tells a user to. Without a pip of its own, its
    pip and setuptools are this environment's (offline: no build isolation, no index)."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)], check=True, timeout=300)
    pip_install(venv_python(root), "-e", REPO / "examples" / "textpatch")
    return root


def harness_in(venv: Path, *args, env=None, cwd=None):
    environ = {k: v for k, v in os.environ.items() if k != plugins.INCLUDE_ENV}
    return subprocess.run([str(venv_python(venv)), "-m", "harness", *map(str, args)], cwd=cwd or REPO,
                          env=dict(environ, **(env or {})), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_installed_example_is_found_by_its_entry_point_and_runs(user_venv, tmp_path):
    listing = harness_in(user_venv, "list")
    assert listing.returncode == 0, listing.stderr
    row = next(l for l in listing.stdout.splitlines() if l.startswith("  textpatch "))
    assert row.endswith("textpatch_method/model.py:TextPatch  [entry point textpatch = "
                        "textpatch_method.model (sag-harness-textpatch 0.1.0)]")

    out = tmp_path / "runs"
    run = harness_in(user_venv, "run", "--methods", "textpatch", "--profile", "smoke", "--seeds", "0",
                     "--splits", "val", "--limit", "16", "--out", out, "--no-progress")
    assert run.returncode == 0, run.stderr
    record = json.loads((out / "synthref" / "textpatch" / "seed0" / "config.json").read_text())
    assert record["config_file"].endswith("textpatch_method/configs/textpatch.py")
    assert record["config"]["train"]["batch_size"] == 32 and record["config"]["train"]["max_steps"] == 4
    assert record["train_log"]["steps"] == 4
    origin = record["method_origin"]
    assert (origin["route"], origin["distribution"], origin["version"]) == \
        ("entry point", "sag-harness-textpatch", "0.1.0")

    table = tmp_path / "a4_plus_textpatch.py"
    table.write_text(USER_TABLE.replace("disc", "textpatch").replace("profile='full'", "profile='smoke'")
                     .replace("dict(method='textpatch', seeds=[0]", "dict(method='textpatch', seeds=[0], "
                              "splits=['val']"))
    rendered = harness_in(user_venv, "table", "--config", table, "--results", out, "--format", "csv")
    assert rendered.returncode == 0, rendered.stderr
    cell = next(l.split(",") for l in rendered.stdout.splitlines() if l.startswith("textpatch,centred textpatch,RefCOCO val,"))
    header = rendered.stdout.splitlines()[0].split(",")
    figure = json.loads((out / "synthref" / "textpatch" / "seed0" / "metrics.json").read_text())
    assert float(cell[header.index("mean")]) == pytest.approx(figure["splits"]["val"]["tau=0.50"]["mIoU"], abs=1e-3)
    assert cell[header.index("n")] == "1" and cell[header.index("stale")] == "0"


@pytest.mark.slow
def test_a_broken_installed_plugin_exits_2_naming_it(user_venv, tmp_path):
    package = tmp_path / "broken_plugin"
    (package / "broken_plugin").mkdir(parents=True)
    (package / "broken_plugin" / "__init__.py").write_text("import no_such_dependency_xyz\n")
    (package / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "broken-plugin"
        version = "0.0.1"
        [project.entry-points."sag_harness.methods"]
        broken = "broken_plugin"
    """))
    pip_install(venv_python(user_venv), package)
    try:
        result = harness_in(user_venv, "run", "--methods", "whole", "--out", tmp_path / "runs")
        assert result.returncode == 2
        assert "broken_plugin (via entry point broken = broken_plugin): ModuleNotFoundError: No module " \
               "named 'no_such_dependency_xyz'" in result.stderr
        assert "methods that loaded:" in result.stderr and "textpatch" in result.stderr
    finally:
        subprocess.run([str(venv_python(user_venv)), "-m", "pip", "uninstall", "-y", "--quiet", "broken-plugin"],
                       capture_output=True, timeout=300)
