"""Paper tables as data: `configs/tables/<NAME>.py` says which runs a table needs and how it reads.

A table spec (an mmengine Config; keys starting with `_` are the file's own helpers) holds:

    title      str
    paper_csv  file under results/paper/ holding the paper's figures (optional)
    method, setting, dataset, split, metric    defaults for every cell (rows/columns override)
    split_by   optional, a REFER split scheme for the cell's dataset (`split_by="umd"`; the same as
               naming the dataset `refcocog@umd`); unset = the dataset's default scheme
    rows       [dict(key, label=key, method=..., setting=..., paper=..., paper_csv=..., x=...)]
    columns    [dict(key, label=key, dataset=..., split=..., metric=..., paper=..., families=[...])]
    runs       [dict(method, seeds=[0, 1, 2], taus=[...], crf=bool, profile="full",
                     datasets=[...], splits=[...])]  # datasets/splits default to what the cells read
    checks     [dict(kind="order"|"below"|"spread"|"at_least", name, ...)]  (harness/report/shape_checks.py)
    footnotes  [str]
    plot       dict(xlabel=..., title=...)   optional: rows with an `x` become a line plot

A cell is `{**defaults, **column, **row}` restricted to (method, setting, dataset, split, metric).
Rows name paper figures by `paper` (the value of the paper CSV's first column, or a dict of
column → value) and columns by `paper` (a column of that CSV).

Dataset families: specs are written with the embedded names; `dataset_family="real"` maps them to
the real datasets (`REAL_DATASETS`, or the spec's own `real_datasets`), and a column with
`families=["real"]` (e.g. PhraseCut) exists only there.

A table spec of your own may live anywhere (`table --config my_table.py`, `run --table
my_table.py`): `use_table_file` gives it the name of its file's stem. Its `_base_` is looked up next
to it, then in configs/tables/ and configs/, so `_base_ = ['A4.py']` with `rows = _base_.rows +
[dict(...)]` and `runs = _base_.runs + [dict(...)]` is "A4 plus my method".

One store folder holds one (dataset, method, seed), so a run is shared by every table that reads
it: `required_runs` widens each run to the union of the splits, taus and CRF that any table asks
of the same (method, dataset, profile). Running A3 and then A4 therefore never reruns `sag`.
"""

from pathlib import Path

from harness.config import read_config_file
from harness.data.datasets import KEY_SEPARATOR, dataset_key, parse_dataset_key
from harness.errors import ConfigError, HarnessError, UnknownNameError
from harness.eval.protocol import Setting
from harness.paths import configs_dir, paper_dir
from harness.report import currency
from harness.store import Store, is_done

CELL_FIELDS = ("method", "setting", "dataset", "split", "metric")
SPEC_KEYS = {"title", "paper_csv", "rows", "columns", "runs", "checks", "footnotes", "plot",
             "real_datasets", "split_by", "custom_imports", *CELL_FIELDS}
REAL_DATASETS = {"synthref": "refcoco", "synthref+": "refcoco+", "synthrefg": "refcocog"}
SYNTHETIC_DATASETS = {"synthref", "synthref+", "synthrefg"}
FAMILIES = ("synthref", "real")
SPLIT_ORDER = ("train", "val", "testA", "testB", "test")
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_RESULTS = Path("results/runs")


def tables_dir() -> Path:
    return configs_dir() / "tables"


_USER_TABLES: dict[str, Path] = {}   # name -> a spec file outside configs/tables/ (use_table_file)


def harness_table_names() -> list[str]:
    return sorted(p.stem for p in tables_dir().glob("*.py") if not p.stem.startswith("_"))


def table_names() -> list[str]:
    """Every table with a spec in configs/tables/ (adding a table = adding a file there), and
    the spec files of your own given in this process (`use_table_file`)."""
    return sorted({*harness_table_names(), *_USER_TABLES})


def looks_like_file(name: str) -> bool:
    return name.endswith(".py") or "/" in name or Path(name).is_file()


def use_table_file(path) -> str:
    """Make a table spec file anywhere known as a table; its name (the file's stem) is returned.
    A name a harness table has is refused (the store and the report would mix them)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: table spec file not found")
    name, resolved = path.stem, path.resolve()
    if (tables_dir() / f"{name}.py").resolve() == resolved:
        return name
    if name in harness_table_names() or _USER_TABLES.get(name, resolved) != resolved:
        raise ConfigError(f"{path}: a table named {name!r} exists already "
                          f"({table_path(name)}); rename your file")
    _USER_TABLES[name] = resolved
    return name


def table_path(name: str) -> Path:
    """The spec file of table `name` (UnknownNameError naming the tables known)."""
    path = _USER_TABLES.get(name, tables_dir() / f"{name}.py")
    if not path.is_file():
        raise UnknownNameError("table", name, table_names())
    return path


def table_origin(name: str) -> str:
    """Where a table's spec lives, as `list` prints it (repository-relative for the harness's)."""
    path = table_path(name)
    try:
        return str(path.resolve().relative_to(configs_dir().resolve().parent))
    except ValueError:
        return f"{path} (your spec file)"


def load_table_spec(name: str) -> dict:
    """The spec of table `name` as a plain dict, checked for the keys every table needs."""
    path = table_path(name)
    spec = read_config_file(path, search=(tables_dir(),))
    unknown = sorted(k for k in spec if k not in SPEC_KEYS and not k.startswith("_"))
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; expected some of {sorted(SPEC_KEYS)}")
    for key in ("title", "rows", "columns", "runs"):
        if not spec.get(key):
            raise ConfigError(f"{path}: field {key!r} is required and must not be empty")
    spec["name"] = name
    spec["path"] = str(path)
    return spec


def paper_csv_path(file_name: str) -> Path:
    return paper_dir() / file_name


def family_dataset(spec: dict, dataset: str, family: str) -> str:
    """A dataset name of the spec (embedded family) as named in `family`."""
    if family not in FAMILIES:
        raise UnknownNameError("dataset family", family, FAMILIES)
    if family == "synthref":
        return dataset
    return spec.get("real_datasets", REAL_DATASETS).get(dataset, dataset)


def family_columns(spec: dict, family: str) -> list[dict]:
    """The spec's columns present in `family`."""
    return [c for c in spec["columns"] if family in c.get("families", FAMILIES)]


def cell_key(spec: dict, row: dict, column: dict, family: str) -> dict:
    """(method, setting, dataset, split, metric) of one cell, with the family's dataset name."""
    merged = {**{k: spec[k] for k in CELL_FIELDS if k in spec}, **column, **row}
    missing = [f for f in CELL_FIELDS if f not in merged]
    if missing:
        raise ConfigError(f"{spec['path']}: row {row.get('key')!r} × column {column.get('key')!r}"
                          f" leaves {missing} unset; set them in the row, column or at top level")
    key = {f: merged[f] for f in CELL_FIELDS}
    key["dataset"] = family_dataset(spec, key["dataset"], family)
    if merged.get("split_by") is not None:
        key["dataset"] = _with_scheme(spec, key["dataset"], merged["split_by"])
    return key


def _with_scheme(spec: dict, dataset: str, split_by: str) -> str:
    """`dataset` under split scheme `split_by`, as the store names it (`refcocog@umd`)."""
    name, own = parse_dataset_key(dataset)
    if dataset != name and own != split_by:
        raise ConfigError(f"{spec['path']}: dataset {dataset!r} and split_by={split_by!r} disagree")
    try:
        return dataset_key(name, split_by)
    except HarnessError as err:
        raise ConfigError(f"{spec['path']}: {err}") from None


def _sorted_splits(splits) -> list[str]:
    rank = {s: i for i, s in enumerate(SPLIT_ORDER)}
    return sorted(set(splits), key=lambda s: (rank.get(s, len(rank)), s))


def _table_runs(spec: dict, family: str) -> list[dict]:
    """The runs one table states, one per (method, dataset), before widening across tables."""
    cells = [cell_key(spec, r, c, family) for r in spec["rows"] for c in family_columns(spec, family)]
    runs = []
    for run in spec["runs"]:
        method = run["method"]
        mine = [c for c in cells if c["method"] == method]
        settings = [Setting.parse(c["setting"]) for c in mine]
        taus = sorted(set(run.get("taus") or [s.tau for s in settings]))
        crf = bool(run.get("crf", any(s.crf for s in settings)))
        uncovered = [s.name for s in settings if s not in Setting.grid(taus, crf)]
        if uncovered:
            raise ConfigError(f"{spec['path']}: run {method!r} (taus={taus}, crf={crf}) does not "
                              f"make the setting(s) {sorted(set(uncovered))} its rows read")
        datasets = [family_dataset(spec, d, family) for d in run.get("datasets", [])]
        datasets = datasets or list(dict.fromkeys(c["dataset"] for c in mine))
        for dataset in datasets:
            splits = run.get("splits") or [c["split"] for c in mine if c["dataset"] == dataset]
            runs.append(dict(method=method, dataset=dataset, splits=_sorted_splits(splits),
                             seeds=list(run.get("seeds", DEFAULT_SEEDS)), taus=taus, crf=crf,
                             profile=run.get("profile", "full")))
    return runs


def required_runs(name: str, dataset_family: str = "synthref") -> list[dict]:
    """Runs table `name` needs: dict(method, dataset, splits, seeds, taus, crf, profile).

    Each run is widened to what every other table asks of the same (method, dataset, profile),
    since they share one store folder per seed.
    """
    own = _table_runs(load_table_spec(name), dataset_family)
    every = [r for t in table_names() for r in _table_runs(load_table_spec(t), dataset_family)]
    for run in own:
        same = [r for r in every if (r["method"], r["dataset"], r["profile"])
                == (run["method"], run["dataset"], run["profile"])]
        run["splits"] = _sorted_splits(s for r in same for s in r["splits"])
        run["taus"] = sorted({t for r in same for t in r["taus"]})
        run["crf"] = any(r["crf"] for r in same)
    return own


def run_command(run: dict, results_dir=DEFAULT_RESULTS) -> str:
    """The exact `python -m harness run ...` that makes `run` in `results_dir`."""
    name, _, split_by = run["dataset"].partition(KEY_SEPARATOR)
    parts = ["python -m harness run", f"--methods {run['method']}", f"--dataset {name}"]
    if split_by:
        parts.append(f"--split-by {split_by}")
    if name not in SYNTHETIC_DATASETS:
        parts.append("--data-root $DATA_ROOT")
    parts += [f"--splits {','.join(run['splits'])}",
              f"--seeds {','.join(str(s) for s in run['seeds'])}"]
    if list(run["taus"]) != [0.5]:
        parts.append("--taus " + ",".join(f"{t:g}" for t in run["taus"]))
    if run["crf"]:
        parts.append("--crf")
    parts.append(f"--profile {run['profile']}")
    if Path(results_dir) != DEFAULT_RESULTS:
        parts.append(f"--out {results_dir}")
    return " ".join(parts)


def missing_runs(name: str, results_dir, dataset_family: str = "synthref", stale=None) -> list[tuple]:
    """(run, command) for each required run with seeds not (fully) in the store, or stale.

    A seed counts as stored when its metrics.json holds every split and setting the run needs;
    it is stale when its recorded config is not today's (`stale`: `currency.stale_runs`, computed
    when not given; the runner recomputes a stale seed, its config hash having changed). The run
    in each pair lists only those seeds.
    """
    missing, store = [], Store(results_dir)
    runs = required_runs(name, dataset_family)
    stale = currency.stale_runs(runs, store) if stale is None else stale
    for run in runs:
        settings = [s.name for s in Setting.grid(run["taus"], run["crf"])]
        outdated = stale.get((run["dataset"], run["method"]), ())
        seeds = [s for s in run["seeds"] if s in outdated or not is_done(
            store.run_dir(run["dataset"], run["method"], s), None, run["splits"], settings)]
        if seeds:
            run = {**run, "seeds": seeds}
            missing.append((run, run_command(run, results_dir)))
    return missing
