"""harness/cli.py: the command-line contract (DESIGN §10) — one-line errors with exit 2, and
`run` end to end through `python -m harness` for the two floors on a tiny REFER fixture."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import registry
from harness.cli import main
from tests.refer_fixture import hand_metrics, write_refer_fixture

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def refer_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("refer")
    return root, write_refer_fixture(root)


@pytest.fixture
def floors_only(monkeypatch):
    """In-process tests need only the floors in the registry (fast, independent of methods)."""
    monkeypatch.setattr(registry, "METHOD_MODULES", ("harness.reference_segmenters",))
    monkeypatch.setattr(registry, "_loaded", False)


def harness_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd or REPO,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv, named", [
    (["run", "--methods", "whole,nosuch"], "unknown method 'nosuch'"),
    (["run", "--methods", "whole", "--seeds", "0,one"], "--seeds '0,one'"),
    (["run", "--methods", "whole", "--taus", "0.5,1.5"], "τ (tau) = '1.5'"),
    (["run", "--methods", "whole", "--dataset", "refcoco"], "--data-root: required"),
    (["run", "--methods", "whole", "--dataset", "nosuchset"], "unknown dataset 'nosuchset'"),
    (["run", "--methods", "whole", "--data-root", "/no/such/root"], "/no/such/root"),
    (["run", "--methods", "whole", "--splits", "val,bogus", "--data-root", "ROOT"],
     "unknown split of synthref 'bogus'"),
    (["run", "--methods", "whole", "--profile", "huge", "--data-root", "ROOT"],
     "unknown profile 'huge'"),
    (["run", "--methods", "whole@T1", "--data-root", "ROOT"], "unknown variant 'T1'"),
    (["run", "--table", "A9"], "unknown table 'A9'"),
    (["table", "A9"], "unknown table 'A9'"),
    (["run", "--table", "A4", "--family", "real"], "--data-root: required"),
    (["run", "--methods", "whole", "--set", "trian.epochs=3", "--data-root", "ROOT"], "trian"),
])
def test_user_mistakes_exit_2_with_one_line(argv, named, refer_root, floors_only, tmp_path, capsys):
    argv = [str(refer_root[0]) if a == "ROOT" else a for a in argv]
    code = main(argv + (["--out", str(tmp_path)] if argv[0] == "run" else []))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert named in err
    assert not any(tmp_path.iterdir())  # nothing was written


def test_argparse_mistakes_exit_2(capsys):
    assert main(["run", "--jobs", "two"]) == 2
    assert main(["nosuchcommand"]) == 2
    assert "invalid int value: 'two'" in capsys.readouterr().err


def test_debug_shows_traceback(floors_only, capsys):
    assert main(["--debug", "run", "--methods", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    last = err.splitlines()[-1]
    # Other test modules may have registered more methods; the line must still name the known ones.
    assert last.startswith("error: unknown method 'nosuch'; expected one of: ")
    assert "objects" in last and "whole" in last


def test_list_names_method_locations_datasets_and_tables():
    result = harness_cli("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  whole        harness/reference_segmenters.py:WholeImage" in lines
    assert "  objects      harness/reference_segmenters.py:ObjectsOracle" in lines
    assert any(line.startswith("  refcoco ") and line.endswith("absent") for line in lines)
    assert lines.index("tables:") > lines.index("datasets:") > lines.index("methods:")


def floors_by_hand(data_root, split):
    """whole-image and every-object (oracle) figures with numpy from the reader's masks."""
    from harness.data.datasets import open_split

    dataset = open_split("synthref", split, data_root=data_root)
    gts = [dataset.mask(i) for i in range(len(dataset))]
    return {"whole": hand_metrics([np.ones_like(gt) for gt in gts], gts),
            "objects": hand_metrics([dataset.objects_mask(i) for i in range(len(dataset))], gts)}


def test_run_floors_end_to_end_in_parallel_jobs(synthref_root, tmp_path):
    out = tmp_path / "runs"
    result = harness_cli("run", "--methods", "whole,objects", "--dataset", "synthref",
                         "--data-root", synthref_root, "--seeds", "0,1", "--splits", "val,testB",
                         "--taus", "0.5", "--crf", "--out", out, "--jobs", "2", "--no-progress")
    # --crf inside --jobs: each worker starts its own DenseCRF pool (workers must not be daemonic).
    assert result.returncode == 0, result.stderr
    assert "4 run(s) computed, 0 already stored" in result.stdout
    for split in ("val", "testB"):
        expected = floors_by_hand(synthref_root, split)
        # Not trivial figures: the oracle is far above the whole image, both below 100.
        assert expected["whole"]["mIoU"] + 5 < expected["objects"]["mIoU"] < 100
        for method in ("whole", "objects"):
            for seed in (0, 1):
                folder = out / "synthref" / method / f"seed{seed}"
                metrics = json.loads((folder / "metrics.json").read_text())
                assert sorted(metrics["splits"]) == ["testB", "val"]
                assert sorted(metrics["splits"][split]) == ["tau=0.50", "tau=0.50+crf"]
                got = metrics["splits"][split]["tau=0.50"]
                for key, value in expected[method].items():
                    assert got[key] == pytest.approx(value, abs=1e-4), (method, split, key)


def test_rerun_skips_what_is_stored(refer_root, floors_only, tmp_path, capsys):
    root, _ = refer_root
    argv = ["run", "--methods", "whole", "--dataset", "synthref", "--data-root", str(root),
            "--seeds", "0", "--splits", "val", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "skip synthref/whole/seed0 (done)" in out
    assert "0 run(s) computed, 1 already stored" in out


def test_table_reads_the_store_it_is_given(refer_root, floors_only, tmp_path, capsys):
    root, _ = refer_root
    assert main(["run", "--methods", "whole", "--dataset", "synthref", "--data-root", str(root),
                 "--seeds", "0", "--splits", "val", "--out", str(tmp_path), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["table", "A4", "--results", str(tmp_path), "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)
    stored = json.loads((tmp_path / "synthref" / "whole" / "seed0" / "metrics.json").read_text())
    assert str(stored["splits"]["val"]["tau=0.50"]["mIoU"]) in json.dumps(table)


def test_figure_entities_names_the_methods_that_can_explain(tmp_path, capsys):
    assert main(["figure", "entities", "--method", "maskclip", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "maskclip does not implement explain" in err and "methods that do: sag" in err, err
    assert main(["figure", "entities", "--method", "tseg", "--slot-types", "--results", str(tmp_path)]) == 2
    assert "tseg does not implement explain" in capsys.readouterr().err
