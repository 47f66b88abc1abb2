"""The method × dataset × seed loop (DESIGN §1). It knows no method: everything method-specific
sits behind `Segmenter.fit / prepare_eval / predict` and the method's config.

One run = one (method spec, dataset, seed): resolve the config; skip when the store already
holds it under the same config hash; else seed, build the segmenter, `fit` on the train split
(unless `method.finetune` is False), then for each eval split predict once per batch and
evaluate every τ (and +crf) from that one pass; write samples.csv, config.json, model.pt
(optional) and metrics.json last.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from harness import distributed, store
from harness.config import ResolvedConfig, config_hash, load_run_config
from harness.data import datasets
from harness.data.datasets import dataset_key, open_split, splits_of
from harness.data.identity import data_identity
from harness.data.loader import check_workers
from harness.errors import ConfigError, DataError, HarnessError
from harness.eval.protocol import Setting
from harness.paths import cache_dir
from harness import registry
from harness.plugins import include_targets
from harness.registry import segmenter_class
from harness.run.eval_pass import evaluate_split
from harness.run.fit_loop import FitContext
from harness.run.parallel import run_parallel
from harness.run.record import config_record, timing_line
from harness.run.train_state import TrainState
from harness.seeding import check_threads, seed_everything, torch_threads
from harness.segmenter import RunEnv
from harness.store import Store
from harness.store.lock import run_lock
from harness.store.predictions import predictions_complete, write_manifest


@dataclass
class RunOptions:
    """Everything about a run that is not the method spec or the seed."""

    dataset: str = "synthref"
    profile: str = "full"
    splits: Optional[list[str]] = None     # None: the dataset's eval splits
    taus: list[float] = field(default_factory=lambda: [0.5])
    crf: bool = False
    overrides: list[str] = field(default_factory=list)
    out: Path = Path("results/runs")
    data_root: Optional[Path] = None
    image_root: Optional[Path] = None
    split_by: Optional[str] = None         # REFER split scheme (None: the dataset's default)
    phrasecut_list: Optional[str] = None   # PhraseCut task list, "ris" | "official" (None: ris if present)
    limit: Optional[int] = None            # cap on eval expressions per split (a quick look)
    config_path: Optional[Path] = None
    resume: bool = False                   # passed to fit in its FitContext
    crf_workers: Optional[int] = None      # None: one per CPU
    progress: bool = True
    save_predictions: bool = False         # also write each map as <run>/predictions/…/<id>.png
    command: Optional[list[str]] = None    # the command line, recorded in config.json
    includes: list[str] = field(default_factory=list)   # `--include` method modules (harness/plugins.py)
    workers: int = 0                       # `--workers`: DataLoader processes decoding images (not hashed:
                                           # the batches and figures are those of 0)

    def __post_init__(self):
        check_workers(self.workers)


@dataclass
class RunOutcome:
    spec: str
    dataset: str
    seed: int
    run_dir: Path
    status: str                            # "done" (computed now) or "skipped" (already stored)
    metrics: dict


def eval_splits_of(dataset: str, split_by: Optional[str] = None) -> list[str]:
    """The splits a dataset (under a split scheme) is reported on by default (the papers')."""
    return list(datasets.eval_splits_of(dataset, split_by))


def evaluable_splits_of(dataset: str, split_by: Optional[str] = None) -> list[str]:
    """Every split with masks that `--splits` may name (all but train) under the split scheme."""
    return [split for split in splits_of(dataset, split_by) if split != "train"]


def store_dataset(opts: RunOptions) -> str:
    """The dataset's name in the store: `refcocog`, or `refcocog@umd` under a non-default scheme."""
    return dataset_key(opts.dataset, opts.split_by)


def resolve(spec: str, opts: RunOptions) -> ResolvedConfig:
    """The run's config, hashed together with the identity of the data it reads (split scheme,
    PhraseCut list and a fingerprint of the annotation files: harness/data/identity.py)."""
    registry.load_methods(include_targets(opts.includes, environ={}))  # (a worker process too)
    args = (spec, opts.dataset, opts.profile, opts.overrides)
    resolved = load_run_config(*args, config_path=opts.config_path, limit=opts.limit)
    resolved = load_run_config(*args, config_path=opts.config_path, limit=opts.limit,
                               data=run_data_identity(opts, resolved.cfg),
                               code=registry.method_code(resolved.method))
    run_threads(resolved)  # a bad runtime.torch_threads is named before any work starts
    return resolved


def run_data_identity(opts: RunOptions, cfg: dict) -> dict:
    """What the run reads: the train split when the method fine-tunes, and the eval splits."""
    splits = list(opts.splits or eval_splits_of(opts.dataset, opts.split_by))
    if cfg["method"].get("finetune", True):
        splits = ["train", *splits]
    return data_identity(opts.dataset, opts.data_root, opts.split_by, splits, opts.phrasecut_list)


def run_threads(resolved: ResolvedConfig) -> Optional[int]:
    """The intra-op thread count a run is pinned to (`runtime.torch_threads`; None: PyTorch's)."""
    return check_threads(resolved.cfg.get("runtime", {}).get("torch_threads"), "runtime.torch_threads")


def _wanted(opts: RunOptions, previous: Optional[dict], config_hash: str):
    """(splits, taus, crf) to compute: what was asked, plus what a stored run of the same hash
    already holds, so that runs asking for different settings never undo each other."""
    splits = list(opts.splits or eval_splits_of(opts.dataset, opts.split_by))
    taus, crf = [float(t) for t in opts.taus], bool(opts.crf)
    if previous is not None and previous.get("config_hash") == config_hash:
        for split, by_setting in previous.get("splits", {}).items():
            if split not in splits:
                splits.append(split)
            for setting in map(Setting.parse, by_setting):
                crf = crf or setting.crf
                if Setting(setting.tau) not in Setting.grid(taus, False):
                    taus.append(setting.tau)
    return splits, sorted(taus), crf


def run_one(spec: str, seed: int, opts: RunOptions,
            resolved: Optional[ResolvedConfig] = None) -> RunOutcome:
    """Compute (or skip) one method spec × seed on `opts.dataset` and store it, with the intra-op
    thread count the config pins (`runtime.torch_threads`: the figures depend on it).

    The run folder's lock (harness/store/lock.py) is held from the "is it done?" check to the
    last write, so two processes writing one store take turns instead of interleaving files.
    """

    resolved = resolved or resolve(spec, opts)
    folder = Store(opts.out).run_dir(store_dataset(opts), resolved.spec, seed)
    with run_lock(folder, enabled=distributed.is_main()), torch_threads(run_threads(resolved)):
        return _run_locked(resolved, seed, opts, folder)


def _run_locked(resolved: ResolvedConfig, seed: int, opts: RunOptions, folder: Path) -> RunOutcome:
    asked_splits = list(opts.splits or eval_splits_of(opts.dataset, opts.split_by))
    asked_settings = [s.name for s in Setting.grid(opts.taus, opts.crf)]
    # Rank 0 decides (it holds the lock); the other ranks follow, so none trains alone.
    done = distributed.broadcast_object(
        store.is_done(folder, resolved.config_hash, asked_splits, asked_settings)
        and (not opts.save_predictions or predictions_complete(
            folder, resolved.config_hash, asked_splits, asked_settings)))
    if done:
        print(f"skip {store_dataset(opts)}/{resolved.spec}/seed{seed} (done)", flush=True)
        return RunOutcome(resolved.spec, opts.dataset, seed, folder, "skipped",
                          store.read_metrics(folder))
    splits, taus, crf = _wanted(opts, store.read_metrics(folder), resolved.config_hash)
    fitted = _stored_fit(Store(opts.out), store_dataset(opts), resolved, seed)  # before begin_run
    if distributed.is_main():  # under torchrun only rank 0 touches the store
        store.begin_run(folder)
    started = time.time()
    segmenter, train_log, timings = _build_and_fit(resolved, seed, opts, folder, fitted)
    results, records = {}, []
    for split in splits:
        results[split], split_records = evaluate_split(
            segmenter, _open(opts, split, limit=opts.limit), resolved.cfg, taus, crf,
            crf_workers=opts.crf_workers, timings=timings, progress=opts.progress,
            save_to=folder if opts.save_predictions else None, workers=opts.workers)
        records.extend(split_records)
    if opts.save_predictions and distributed.is_main():  # every rank's PNGs are written by now
        write_manifest(folder, resolved.config_hash, splits, [s.name for s in Setting.grid(taus, crf)])
    draws = _inference_draws(segmenter, resolved.cfg, results, opts, taus, crf, timings)
    metrics = store.metrics_document(resolved.spec, opts.dataset, seed,
                                     resolved.config_hash, results,
                                     split_by=(resolved.data or {}).get("split_by"))
    if draws is not None:
        metrics["inference_draws"] = draws
    _write_run(folder, resolved, seed, opts, segmenter, records, metrics,
               dict(train_log=train_log, timings=timings, started=started))
    distributed.barrier()  # no rank reads the store before rank 0 has written this run
    if distributed.is_main():
        print(timing_line(f"{store_dataset(opts)}/{resolved.spec}/seed{seed}", timings), flush=True)
    return RunOutcome(resolved.spec, opts.dataset, seed, folder, "done", metrics)


def _inference_draws(segmenter, cfg: dict, first: dict, opts: RunOptions, taus: list[float],
                     crf: bool, timings: dict) -> Optional[dict]:
    """The spread over test-time sampling of this one trained model: `protocol.inference_draws`
    evaluation passes in all (draw 0 is the run's own, `first`), each re-seeded by the method
    (`Segmenter.reseed_inference`); None for a method whose predictions sample nothing.

    Returns {split: {setting: {metric: [draw 0, draw 1, …]}}} for metrics.json; tables show the
    std over draws beside the std over training seeds (harness/report/variance.py)."""
    n = cfg.get("protocol", {}).get("inference_draws", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"protocol.inference_draws={n!r}: expected an integer ≥ 1 (1: the run's "
                          "own pass only)")
    if n == 1 or not segmenter.reseed_inference(1):
        return None
    per_draw = [first]
    for draw in range(1, n):
        if draw > 1:
            segmenter.reseed_inference(draw)
        per_draw.append({split: evaluate_split(
            segmenter, _open(opts, split, limit=opts.limit), cfg, taus, crf,
            crf_workers=opts.crf_workers, timings=timings, progress=opts.progress,
            workers=opts.workers)[0]
            for split in first})
    rounded = [{split: {setting: store.rounded_summary(summary) for setting, summary in by.items()}
                for split, by in draws.items()} for draws in per_draw]
    return {split: {setting: {metric: [d[split][setting][metric] for d in rounded]
                              for metric in rounded[0][split][setting] if metric not in store.COUNT_KEYS}
                    for setting in sorted(by)}
            for split, by in sorted(rounded[0].items())}


def _open(opts: RunOptions, split: str, limit: Optional[int] = None):
    return open_split(opts.dataset, split, data_root=opts.data_root, image_root=opts.image_root,
                      split_by=opts.split_by, limit=limit, phrasecut_list=opts.phrasecut_list)


def fit_hash(cfg: dict, method: str, dataset: str, profile: str, data: Optional[dict] = None,
             code: Optional[dict] = None) -> str:
    """What a fit depends on: the config hash of the method config without the keys the method
    declares evaluation-only (`Segmenter.EVAL_ONLY_KEYS`, e.g. SaG's inference scheme), the train
    config, the pinned thread count, the data identity and an outside method's code identity —
    not the protocol, τ, CRF or evaluation batch size."""
    eval_only = set(segmenter_class(method).EVAL_ONLY_KEYS)
    payload = dict(method={k: v for k, v in cfg["method"].items() if k not in eval_only},
                   train=cfg.get("train", {}), torch_threads=cfg.get("runtime", {}).get("torch_threads"))
    if cfg.get("runtime", {}).get("kernels"):   # pinned kernels (harness/numerics.py): another fit
        payload["kernels"] = cfg["runtime"]["kernels"]
    return config_hash(payload, dataset, profile, data=data, code=code)


def _recorded_fit_hash(record: dict) -> Optional[str]:
    """The fit hash of a stored run, from the resolved config its config.json holds."""
    try:
        return fit_hash(record["config"], record["method"].partition("@")[0], record["dataset"],
                        record["profile"], record.get("data"), record.get("method_code"))
    except (KeyError, TypeError, HarnessError):   # an older or foreign record: never shared
        return None


def _stored_fit(results: Store, dataset: str, resolved: ResolvedConfig, seed: int) -> Optional[dict]:
    """A stored fit this run can predict from instead of training again, or None: the model.pt of
    a complete run (same dataset, split scheme and seed) whose fit hash is this run's —

    - this run's own folder, when it now only lacks a τ, the +crf settings or a split, or was
      stored under other evaluation keys (`--set method.inference=avg`);
    - else a sibling: a variant that changes only evaluation keys (Table 3's inference schemes)
      predicts from the model its base trained, as the paper applies them to one trained model.
    Figures come out as if it had trained (same weights, same evaluation seeding; tested).
    """
    if not resolved.cfg["method"].get("finetune", True):
        return None
    wanted = fit_hash(resolved.cfg, resolved.method, resolved.dataset, resolved.profile, resolved.data,
                      resolved.code)
    for source, record in results.fitted_runs(dataset, resolved.spec, seed):
        if _recorded_fit_hash(record) != wanted:
            continue
        train_log = record.get("train_log") or {}
        return dict(state=store.load_checkpoint(source),
                    train_log={k: v for k, v in train_log.items() if k != "fit_restored_from"},
                    source=str(source / store.CHECKPOINT_FILE),
                    fitted_at=train_log.get("fitted_at") or record.get("started_at"))
    return None


def _build_and_fit(resolved: ResolvedConfig, seed: int, opts: RunOptions, folder: Path,
                   fitted: Optional[dict] = None):
    """Seed, build the segmenter from the registry, and fit it unless the config says not to
    (or restore the stored fit `fitted`, see `_stored_fit`).

    The fit checkpoints each epoch into the run folder's train_state/, tagged with the config
    hash, and resumes from it under --resume: its FitContext's state (harness/run/train_state.py)."""

    seed_everything(seed)
    method_cfg = resolved.cfg["method"]
    train_split = None
    timings = {"build": 0.0, "fit": 0.0, "data": 0.0, "predict": 0.0, "crf": 0.0, "metrics": 0.0}
    if method_cfg.get("finetune", True):
        train_split = _open(opts, "train")
    data_root = train_split.root if train_split is not None else _open(
        opts, (opts.splits or eval_splits_of(opts.dataset, opts.split_by))[0]).root
    env = RunEnv(dataset=opts.dataset, data_root=Path(data_root), cache_dir=cache_dir(),
                 device=distributed.device(), progress=opts.progress, workers=opts.workers)
    tick = time.perf_counter()
    segmenter = segmenter_class(resolved.method)(method_cfg, env)  # may run stand-in pretraining
    timings["build"] = time.perf_counter() - tick
    train_log = {}
    if fitted is not None:
        segmenter.restore_fit(fitted["state"], seed)
        train_log = dict(fitted["train_log"], fit_restored_from=fitted["source"],
                         fitted_at=fitted["fitted_at"])
        print(f"restored {opts.dataset}/{resolved.spec}/seed{seed} from {fitted['source']} "
              "(same fit; no retraining)", flush=True)
    elif train_split is not None:
        state = TrainState(store.train_state_dir(folder), resume=opts.resume, tag=resolved.config_hash,
                           method=resolved.spec, seed=seed)
        tick = time.perf_counter()
        train_log = segmenter.fit(train_split, dict(resolved.cfg["train"]), seed,
                                  FitContext.of(env, state)) or {}
        timings["fit"] = time.perf_counter() - tick
    return segmenter, train_log, timings


def _write_run(folder: Path, resolved: ResolvedConfig, seed: int, opts: RunOptions, segmenter,
               records: list[dict], metrics: dict, extra: dict) -> None:
    """samples.csv, config.json, model.pt (optional), then metrics.json — the completion mark."""
    if not distributed.is_main():
        return
    store.write_samples_atomic(folder / store.SAMPLES_FILE, records)
    runtime = resolved.cfg.get("runtime", {})
    if runtime.get("save_checkpoint") or resolved.cfg["method"].get("save_checkpoint"):
        store.save_checkpoint_atomic(folder / store.CHECKPOINT_FILE, segmenter.state_dict())
    record = config_record(resolved, seed, opts, extra["train_log"], extra["timings"],
                           extra["started"])
    # Runs with one fit hash share one trained model (_stored_fit); recorded for the reader.
    record["fit_hash"] = fit_hash(resolved.cfg, resolved.method, resolved.dataset, resolved.profile,
                                  resolved.data, resolved.code)
    # Where the method's code came from (harness/plugins.py): an outside method's module,
    # distribution, version and source sha256; `method_code` is the part in the config hash.
    record["method_origin"] = registry.origin(resolved.method).record()
    record["method_code"] = resolved.code
    store.write_json_atomic(folder / store.CONFIG_FILE, record)
    store.write_metrics_atomic(folder / store.METRICS_FILE, metrics)
    store.drop_train_state(folder)  # the run is stored: nothing left to resume


def check_data_root(opts: RunOptions) -> None:
    """A user-given data root that does not exist is named before any work starts."""
    for flag, path in (("--data-root", opts.data_root), ("--image-root", opts.image_root)):
        if path is not None and not Path(path).is_dir():
            raise DataError(path, f"{flag}: folder not found")


def run_many(specs: Iterable[str], seeds: Iterable[int], opts: RunOptions,
             jobs: int = 1, overall=None) -> list[RunOutcome]:
    """Every spec × seed on `opts.dataset`; configs are resolved first so mistakes surface early.
    `overall` (harness/run/progress.py), when given, is told of each finished run in turn."""

    check_data_root(opts)
    distributed.init_distributed()  # under torchrun: join the group (no-op otherwise)
    resolved = {}
    for spec in specs:
        resolved[spec] = resolve(spec, opts)
        segmenter_class(resolved[spec].method)
    work = [(spec, int(seed)) for spec in resolved for seed in seeds]
    if jobs > 1 and len(work) > 1:
        outcomes = run_parallel(run_one, work, opts, jobs)
        for outcome in outcomes:
            _report_overall(overall, outcome)
        return outcomes
    outcomes = []
    for spec, seed in work:
        outcomes.append(run_one(spec, seed, opts, resolved[spec]))
        _report_overall(overall, outcomes[-1])
    return outcomes


def _report_overall(overall, outcome: RunOutcome) -> None:
    if overall is not None and distributed.is_main():
        print(overall.finished(outcome.spec, outcome.status == "done"), flush=True)


def command_line() -> list[str]:
    """The command as the user typed it (`python -m harness ...` rather than `__main__.py`)."""
    program = Path(sys.argv[0]).name
    head = ["python", "-m", "harness"] if program == "__main__.py" else [program]
    return head + sys.argv[1:]
