"""What `run` prints when it finishes: the runs it was asked for, aggregated from the store.

A pure aggregation like every table (it reads metrics.json files, never recomputes): one row per
method and setting, one column per split, mIoU as mean ± std over seeds with n.
"""

from tabulate import tabulate

from harness.data.datasets import dataset_info, parse_dataset_key
from harness.store import Store
from harness.report.tables import Cell, format_cell, seed_stats


def summary_table(results_dir, dataset: str, methods: list[str], metric: str = "mIoU") -> str:
    """`dataset` as the store names it (`refcocog@umd` for a non-default split scheme)."""
    frame = Store(results_dir).frame()
    if frame.empty:
        return ""
    frame = frame[(frame["dataset"] == dataset) & frame["method"].isin(methods)
                  & (frame["metric"] == metric)]
    if frame.empty:
        return ""
    stats = seed_stats(frame)
    present = set(frame["split"])
    name, split_by = parse_dataset_key(dataset)      # `refcocog@umd`: umd's splits
    splits = [s for s in dataset_info(name).scheme(split_by, name).eval_splits if s in present]
    splits += sorted(present - set(splits))
    rows = []
    for method in methods:
        for setting in sorted(set(frame[frame["method"] == method]["setting"])):
            cells = [format_cell(Cell({}, *stats.get((dataset, method, split, setting, metric), ())))
                     for split in splits]
            rows.append([method, setting, *cells])
    header = ["method", "setting", *[f"{dataset} {split}" for split in splits]]
    return f"{metric} (%), mean ± std over seeds:\n" + tabulate(rows, header, tablefmt="github")
