"""The summary `run` prints: mean ± std over seeds per method, setting and split, read from the store."""

from harness.report.run_summary import summary_table
from harness.store import Store, metrics_document, write_json_atomic


def _write(results, method, seed, val, testA):
    splits = {split: {"tau=0.50": {"A@0.3": 0.0, "A@0.5": 0.0, "A@0.7": 0.0, "cIoU": 0.0,
                                   "mIoU": miou, "n": 10}}
              for split, miou in (("val", val), ("testA", testA))}
    write_json_atomic(Store(results).run_dir("synthref", method, seed) / "metrics.json",
                      metrics_document(method, "synthref", seed, "abc", splits))


def test_summary_is_mean_and_sample_std_over_seeds_in_split_order(tmp_path):
    for seed, (val, testA) in enumerate([(30.0, 10.0), (31.0, 12.0), (32.0, 14.0)]):
        _write(tmp_path, "sag", seed, val, testA)
    _write(tmp_path, "other", 0, 50.0, 50.0)  # not asked for: not shown
    text = summary_table(tmp_path, "synthref", ["sag"])
    header = [line for line in text.splitlines() if line.startswith("| method")][0]
    assert header.index("synthref val") < header.index("synthref testA")
    row = [line for line in text.splitlines() if line.startswith("| sag")][0]
    assert "31.00 ± 1.00 (n=3)" in row and "12.00 ± 2.00 (n=3)" in row
    assert "other" not in text


def test_empty_store_gives_no_summary(tmp_path):
    assert summary_table(tmp_path, "synthref", ["sag"]) == ""
