"""Every run a paper table asks for resolves to a real config, on both dataset families.

A table names methods and variants by string (e.g. `sag@Ks3`); this catches a table asking for a
variant that a method's synthref or real-data config does not define.
"""

import pytest

from harness.config import load_run_config
from harness.report.table_specs import required_runs, table_names


@pytest.mark.parametrize("family", ["synthref", "real"])
@pytest.mark.parametrize("table", table_names())
def test_every_required_run_has_a_config(table, family):
    runs = required_runs(table, dataset_family=family)
    assert runs
    for run in runs:
        resolved = load_run_config(run["method"], run["dataset"], run.get("profile") or "full")
        assert resolved.cfg["method"]["type"] == run["method"].split("@")[0] or run["method"] in ("whole", "objects")
