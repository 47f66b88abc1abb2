"""The handlers of `python -m harness` commands: validate flags, call the owning module, print.

Each handler takes the parsed argparse namespace and returns the exit status. Modules are
imported inside the handlers so that one missing part does not break the other commands.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError, DataError, UnknownNameError


# ----------------------------------------------------------------------------------- validation

def comma_list(text: str, flag: str) -> list[str]:
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        raise ConfigError(f"{flag} {text!r}: expected a comma-separated list")
    return items


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(item) for item in comma_list(text, "--seeds")]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def parse_taus(text: str) -> list[float]:
    from harness.eval.protocol import check_tau

    taus = [check_tau(item) for item in comma_list(text, "--taus")]
    return sorted(set(taus))


def check_dataset(name: str) -> None:
    from harness.data.datasets import DATASETS

    if name not in DATASETS:
        raise UnknownNameError("dataset", name, DATASETS)


def check_data_root(dataset: str, data_root) -> None:
    """Real datasets need --data-root; a given root must exist."""
    from harness.data.datasets import is_synthetic

    if data_root is None:
        if not is_synthetic(dataset):
            raise ConfigError(f"--data-root: required for the real dataset {dataset!r} "
                              f"(the folder holding {dataset}/ and images/)")
        return
    if not Path(data_root).is_dir():
        raise DataError(data_root, "--data-root: folder not found")


def check_splits(dataset: str, splits: list[str], split_by=None) -> None:
    """Each split exists under the dataset's split scheme (G-Ref umd has test; google has not)."""
    from harness.data.datasets import dataset_info
    from harness.run.runner import evaluable_splits_of

    known = evaluable_splits_of(dataset, split_by)
    info = dataset_info(dataset)
    scheme = info.resolve_split_by(split_by, dataset)
    where = f"{dataset} ({scheme})" if len(info.schemes) > 1 else dataset
    for split in splits:
        if split not in known:
            raise UnknownNameError(f"split of {where}", split, known)


def check_split_scheme(dataset: str, split_by, phrasecut_list=None) -> None:
    """--split-by names a scheme of a REFER dataset; --phrasecut-list applies to PhraseCut only."""
    from harness.data.datasets import dataset_info

    info = dataset_info(dataset)
    info.resolve_split_by(split_by, dataset)
    if phrasecut_list is not None and info.kind != "phrasecut":
        raise ConfigError(f"--phrasecut-list applies to phrasecut, not {dataset!r}")


def load_includes(args, always: bool = False) -> None:
    """Import the `--include` method modules (and SAG_HARNESS_INCLUDE's, and the installed
    plugins'). Commands that only read the store load the registry only when one is named."""
    from harness import registry
    from harness.plugins import include_targets

    targets = include_targets(getattr(args, "include", None) or [])
    if always or targets:
        registry.load_methods(include_targets(getattr(args, "include", None) or [], environ={}))


def check_methods(specs: list[str]) -> None:
    from harness.config import split_method_spec
    from harness.registry import method_names

    known = method_names()
    for spec in specs:
        name, _ = split_method_spec(spec)
        if name not in known:
            raise UnknownNameError("method", name, known)


def check_table(name: str) -> str:
    """The table's name: a harness table's, or that of a spec file anywhere (its stem)."""
    from harness.report.table_specs import looks_like_file, table_names, use_table_file

    if looks_like_file(name):
        return use_table_file(name)
    if name not in table_names():
        raise UnknownNameError("table", name, table_names())
    return name


# --------------------------------------------------------------------------------------- list

def cmd_list(args) -> int:
    """Methods (where each came from), datasets, tables (where each spec lives). A method module
    that failed to import is listed too, and then the command fails (exit 2)."""
    from harness import registry
    from harness.errors import MethodImportError

    try:
        load_includes(args, always=True)
        failed = None
    except MethodImportError as exc:
        failed = exc
    print("methods:")
    for name, location in _method_rows():
        print(f"  {name:<12} {location}")
    print("datasets:")
    from harness.data.datasets import DATASETS, dataset_present

    for name in DATASETS:
        present = "present" if dataset_present(name, args.data_root) else "absent"
        print(f"  {name:<12} {present}")
    print("tables:")
    try:
        from harness.report.table_specs import table_names
    except ImportError as exc:
        print(f"  (table specs not available: {exc})")
    else:
        from harness.report.table_specs import table_origin

        for path in args.table:
            check_table(path)
        for name in table_names():
            print(f"  {name:<12} {table_origin(name)}")
    if failed is not None:
        raise failed
    return 0


def _method_rows() -> list[tuple[str, str]]:
    """(name, module/path.py:Class [route]) of every registered method — the route only for a
    method from outside the harness — then each module that failed to import."""
    from harness import registry

    rows = []
    for name in sorted(registry.SEGMENTERS.module_dict):
        cls = registry.SEGMENTERS.get(name)
        origin, where = registry.origin(name), registry.location(cls)
        rows.append((name, f"{where}  [{origin.describe()}]" if origin.outside else where))
    return rows + [(failure.target, f"(not importable via {failure.route}: {failure.error})")
                   for failure in registry.failures()]


# ---------------------------------------------------------------------------------------- data

def cmd_data(args) -> int:
    from harness.data.synthref import ensure_synthref, write_synthref

    if args.out is not None:
        root = write_synthref(Path(args.out), variant=args.variant, seed=args.seed)
    else:
        root = ensure_synthref(args.variant, seed=args.seed)
    print(root)
    return 0


# ----------------------------------------------------------------------------------------- run

def run_options(args, dataset: str, splits, taus, crf, profile, split_by=None):
    from harness.run.runner import RunOptions, command_line

    return RunOptions(
        dataset=dataset, profile=profile, splits=splits, taus=taus, crf=crf,
        overrides=[item for group in args.overrides for item in group],
        out=Path(args.out), data_root=Path(args.data_root) if args.data_root else None,
        image_root=Path(args.image_root) if args.image_root else None,
        split_by=split_by, phrasecut_list=args.phrasecut_list, limit=args.limit,
        config_path=Path(args.config) if args.config else None, resume=args.resume,
        crf_workers=args.crf_workers, progress=not args.no_progress, command=command_line(),
        save_predictions=args.save_predictions, includes=list(args.include), workers=args.workers)


def _check_counts(args) -> None:
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: expected an integer ≥ 1")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit {args.limit}: expected an integer ≥ 1")
    if args.crf_workers is not None and args.crf_workers < 1:
        raise ConfigError(f"--crf-workers {args.crf_workers}: expected an integer ≥ 1")


def cmd_run(args) -> int:
    """`run`: one batch of runs from the flags, or every run a table needs (`--table`, whose
    runs bring their own methods, splits, seeds, τ and CRF; an explicit --profile wins)."""
    from harness import distributed
    from harness.run.progress import OverallProgress
    from harness.run.runner import run_many

    _check_counts(args)
    load_includes(args, always=True)   # before any method name is checked
    batches = _table_batches(args) if args.table else [_flag_batch(args)]
    for specs, seeds, opts in batches:  # validate every batch before computing any
        check_methods(specs)
        check_dataset(opts.dataset)
        check_split_scheme(opts.dataset, opts.split_by, opts.phrasecut_list)
        check_data_root(opts.dataset, opts.data_root)
        if opts.splits:
            check_splits(opts.dataset, opts.splits, opts.split_by)
    distributed.init_distributed()  # under torchrun: join the group once for every batch
    work = [(opts.dataset, spec, int(seed)) for specs, seeds, opts in batches for spec in specs for seed in seeds]
    overall = OverallProgress(work) if len(work) > 1 else None
    finished = False
    try:
        outcomes = []
        for specs, seeds, opts in batches:
            outcomes += run_many(specs, seeds, opts, jobs=args.jobs, overall=overall)
        computed = sum(outcome.status == "done" for outcome in outcomes)
        if distributed.is_main():
            print(f"{computed} run(s) computed, {len(outcomes) - computed} already stored, "
                  f"in {args.out}")
            _print_summaries(batches, args.out)
        finished = True
    finally:
        distributed.shutdown_distributed(finished)
    return 0


def _print_summaries(batches, results_dir) -> None:
    from harness.report.run_summary import summary_table
    from harness.run.runner import store_dataset

    by_dataset: dict[str, list[str]] = {}
    for specs, _, opts in batches:
        key = store_dataset(opts)
        by_dataset.setdefault(key, [])
        by_dataset[key] += [s for s in specs if s not in by_dataset[key]]
    for dataset, specs in by_dataset.items():
        text = summary_table(results_dir, dataset, specs)
        if text:
            print("\n" + text)


def _flag_batch(args):
    """The run the flags ask for. With --config, the config says which method it serves (its
    method.type, imported through its custom_imports): harness/config.py `methods_served`."""
    from harness.config import methods_served

    specs = comma_list(args.methods, "--methods") if args.methods is not None else None
    if args.config:
        specs = methods_served(Path(args.config), specs)
    specs = specs or comma_list(args.default_methods, "--methods")
    seeds = parse_seeds(args.seeds)
    splits = comma_list(args.splits, "--splits") if args.splits else None
    opts = run_options(args, args.dataset, splits, parse_taus(args.taus), args.crf,
                       args.profile or "full", split_by=args.split_by)
    return specs, seeds, opts


def _table_batches(args):
    """(specs, seeds, options) per run a table needs; --profile/--seeds given explicitly win.
    A run's dataset may name a split scheme (`refcocog@umd`, configs/tables/*.py)."""
    from harness.data.datasets import parse_dataset_key
    from harness.report.table_specs import required_runs

    table = check_table(args.table)
    if args.split_by is not None:
        raise ConfigError("--split-by: a table's runs name their own split schemes "
                          "(configs/tables/*.py); give it without --table")
    batches = []
    for run in required_runs(table, dataset_family=args.family):
        profile = args.profile or run.get("profile") or "full"
        dataset, split_by = parse_dataset_key(run["dataset"])
        opts = run_options(args, dataset, list(run.get("splits") or []) or None,
                           [float(t) for t in run.get("taus") or [0.5]], bool(run.get("crf")),
                           profile, split_by=split_by)
        batches.append(([run["method"]], [int(s) for s in run.get("seeds", [0])], opts))
    return batches


# ------------------------------------------------------------------------------------ readers

def cmd_table(args) -> int:
    from harness.report.tables import render_table

    if (args.name is None) == (args.config is None):
        raise ConfigError("table: give one table name (A2, A3, A4, T3: `list` names them) or "
                          "--config TABLE_SPEC (one, not both)")
    load_includes(args)
    name = check_table(args.name or args.config)
    print(render_table(name, Path(args.results), fmt=args.format, paper=args.paper,
                       dataset_family=args.family, ci=interval_options(args) if args.ci else None))
    return 0


def interval_options(args):
    from harness.report.intervals import IntervalOptions
    return IntervalOptions(boot=args.boot, resample=args.resample)


def cmd_compare(args) -> int:
    from harness.report.compare import compare_methods, render_comparison

    check_dataset(args.dataset)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    result = compare_methods(Path(args.results), args.a, args.b, dataset=args.dataset,
                             split=args.split, setting=args.setting, seeds=seeds,
                             opts=interval_options(args))
    print(render_comparison(result, args.format), end="")
    return 0


def cmd_breakdown(args) -> int:
    from harness.report.breakdowns import breakdown, render_breakdown, table_rows

    check_dataset(args.dataset)
    load_includes(args)
    if args.methods:
        setting = args.setting or "tau=0.50"
        rows = [dict(label=m, method=m, setting=setting) for m in args.methods.split(",") if m]
    else:
        if args.setting:
            raise ConfigError("breakdown: --setting goes with --methods (a table's rows name theirs)")
        rows = table_rows(check_table(args.table), args.dataset)
    result = breakdown(Path(args.results), args.by, rows, dataset=args.dataset, split=args.split,
                       data_root=args.data_root, split_by=args.split_by, opts=interval_options(args))
    print(render_breakdown(result, args.format), end="")
    return 0


def cmd_score(args) -> int:
    from harness.eval.protocol import check_tau
    from harness.eval.score import format_score_table, score_predictions

    check_dataset(args.dataset)
    check_split_scheme(args.dataset, args.split_by, args.phrasecut_list)
    check_data_root(args.dataset, args.data_root)
    if not Path(args.predictions).is_dir():
        raise DataError(args.predictions, "--predictions: folder not found")
    # synthref without --data-root: the cache's copy, as `run` reads it (harness/data/datasets.py).
    result = score_predictions(args.dataset, Path(args.data_root) if args.data_root else None, args.split,
                               Path(args.predictions), tau=check_tau(args.tau), crf=args.crf,
                               image_root=args.image_root, split_by=args.split_by,
                               limit=args.limit, phrasecut_list=args.phrasecut_list)
    print(format_score_table(result))
    if args.json:
        from harness.store import write_json_atomic

        write_json_atomic(Path(args.json), result)
    return 0


def cmd_check(args) -> int:
    from harness.paths import reference_path
    from harness.report.check import run_check

    reference = Path(args.reference) if args.reference else reference_path("ci.json")
    return run_check(Path(args.results), reference, args.tolerance, args.update,
                     only=args.only, tolerances_from=args.tolerances_from)


def cmd_figure(args) -> int:
    from harness.report.figures import entity_figure
    from harness.registry import explaining_methods

    if args.n < 1:
        raise ConfigError(f"--n {args.n}: expected an integer ≥ 1")
    check_dataset(args.dataset)
    load_includes(args, always=True)
    explainers = explaining_methods()
    method = args.method or explainers[0]
    check_methods([method])
    if method.partition("@")[0] not in explainers:
        raise ConfigError(f"figure entities --method {method}: {method.partition('@')[0]} does not implement "
                          f"explain (harness/segmenter.py), so it has no entities to draw; methods that do: "
                          f"{', '.join(explainers) or 'none'}")
    if args.slot_types and method.partition("@")[0] != "sag":
        raise ConfigError(f"figure entities --slot-types: compares SaG's entity, random and query slots "
                          f"(sag, sag@random_slots, sag@query_slots); --method {method} has no slot types")
    out = entity_figure(Path(args.results), method=method, dataset=args.dataset, n=args.n,
                        out=Path(args.out), slot_types=args.slot_types,
                        data_root=Path(args.data_root) if args.data_root else None)
    print(out if out is not None else args.out)
    return 0


def cmd_doctor(args) -> int:
    from harness.doctor import run_doctor

    if args.data_root is not None and not Path(args.data_root).is_dir():
        raise DataError(args.data_root, "--data-root: folder not found")
    overrides = [item for group in args.overrides for item in group]
    methods = comma_list(args.methods, "--methods") if args.methods else None
    load_includes(args, always=True)
    if methods:
        check_methods(methods)
    return run_doctor(Path(args.data_root) if args.data_root else None,
                      image_root=Path(args.image_root) if args.image_root else None,
                      overrides=overrides, methods=methods, phrasecut_list=args.phrasecut_list)


def cmd_report(args) -> int:
    from harness.report.markdown import stored_entity_figure, write_report

    load_includes(args)
    results = Path(args.results)
    if args.html is not None:   # the self-contained page instead of the Markdown report
        from harness.report.html_report import write_html_report

        if args.gallery_n < 1:
            raise ConfigError(f"--gallery-n {args.gallery_n}: expected an integer ≥ 1")
        print(write_html_report(results, Path(args.html), gallery_n=args.gallery_n,
                                gallery_split=args.gallery_split))
        return 0
    out = write_report(results, Path(args.out), entity_figure=stored_entity_figure(results))
    print(out if out is not None else args.out)
    return 0


HANDLERS = {
    "list": cmd_list,
    "data": cmd_data,
    "run": cmd_run,
    "table": cmd_table,
    "compare": cmd_compare,
    "breakdown": cmd_breakdown,
    "score": cmd_score,
    "check": cmd_check,
    "figure": cmd_figure,
    "report": cmd_report,
    "doctor": cmd_doctor,
}
