"""`python -m harness ...` (DESIGN §10): argparse, validation, and the one-line error contract.

A user mistake (any HarnessError) prints `error: <message>` on stderr and exits 2 (the traceback
only with --debug); argparse mistakes exit 2 as well; anything else is a bug: traceback, exit 1.
Command handlers import their modules lazily, so `list` works with whatever parts exist.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Optional, Sequence

from harness.errors import HarnessError

DEFAULT_METHODS = "sag,maskclip"
DEFAULT_RESULTS = "results/runs"


def _debug_parent(suppress: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    # Subcommands must not reset a --debug given before the subcommand, hence SUPPRESS there.
    parent.add_argument("--debug", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="show the traceback of errors")
    return parent


def _add_include(parser: argparse.ArgumentParser) -> None:
    """`--include` on every command that names methods (harness/plugins.py)."""
    parser.add_argument("--include", action="append", default=[], metavar="MODULE_OR_PATH",
                        help="import a method module of your own first: a module name, a .py file "
                             "or a package folder (repeatable; also SAG_HARNESS_INCLUDE, "
                             "os.pathsep-separated; docs/adding_a_method.md)")


def _add_run(sub, parents) -> None:
    run = sub.add_parser("run", parents=parents, help="train and evaluate methods × seeds")
    run.add_argument("--methods", default=None,
                     help=f"comma-separated method specs, NAME or NAME@VARIANT (default {DEFAULT_METHODS}; "
                          "with --config: the method its method.type names)")
    run.set_defaults(default_methods=DEFAULT_METHODS)
    _add_include(run)
    run.add_argument("--dataset", default="synthref")
    run.add_argument("--data-root", default=None)
    run.add_argument("--image-root", default=None)
    run.add_argument("--split-by", default=None,
                     help="REFER split scheme (refcoco/+: unc; refcocog: google (default) or umd)")
    run.add_argument("--phrasecut-list", default=None, choices=["ris", "official"],
                     help="PhraseCut task list: SaG's refer_<split>_ris.json (default when "
                          "present, the paper's) or the official refer_<split>.json")
    run.add_argument("--splits", default=None, help="comma-separated; default: the eval splits")
    run.add_argument("--seeds", default="0,1,2")
    run.add_argument("--profile", default=None, help="smoke, ci or full (default full)")
    run.add_argument("--table", default=None,
                     help="make every run a table needs (A2, A3, A4, T3: `list` names them), "
                          "or a table spec file of your own (my_table.py)")
    run.add_argument("--family", default="synthref", choices=["synthref", "real"],
                     help="with --table: the embedded benchmark or the real datasets")
    run.add_argument("--taus", default="0.5", help="comma-separated thresholds in (0, 1)")
    run.add_argument("--crf", action="store_true", help="also evaluate the +crf settings")
    run.add_argument("--set", dest="overrides", action="append", default=[], nargs="+",
                     metavar="KEY=VALUE", help="config override, e.g. train.epochs=3; a key the "
                                               "config lacks is an error unless written +KEY=VALUE")
    run.add_argument("--out", default=DEFAULT_RESULTS)
    run.add_argument("--config", default=None,
                     help="config file instead of configs/<method>.py, anywhere (its _base_ may name "
                          "the harness's, e.g. _base_/synthref.py; its custom_imports are imported)")
    run.add_argument("--limit", type=int, default=None, help="first N expressions of each split")
    run.add_argument("--jobs", type=int, default=1, help="parallel method × seed processes")
    run.add_argument("--crf-workers", type=int, default=None, help="DenseCRF processes")
    run.add_argument("--workers", type=int, default=0,
                     help="DataLoader processes decoding and resizing images (default 0: this process; "
                          "the batches and figures are the same; docs/gpu.md)")
    run.add_argument("--resume", action="store_true", help="resume fit from its checkpoint")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--save-predictions", action="store_true",
                     help="also write each map as <run>/predictions/<split>/<sample_id>.png "
                          "(what `score` reads)")
    run.add_argument("--reproducible", action="store_true",
                     help="pinned CPU kernels (SAG_HARNESS_KERNELS=pinned, harness/numerics.py): the same "
                          "bits on any x86 CPU with AVX2 at the same thread count, at a cost in speed")


def _add_interval_options(parser) -> None:
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap replicates (≥ 1000)")
    parser.add_argument("--resample", default="images", choices=["images", "images+seeds"],
                        help="images: the interval of these trained models' seed-mean; "
                             "images+seeds: seeds drawn too (training noise folded in)")


def _add_readers(sub, parents) -> None:
    table = sub.add_parser("table", parents=parents, help="render a paper table from the store")
    table.add_argument("name", nargs="?", default=None,
                       help="A2, A3, A4, T3 (`list` names them), or a table spec file")
    table.add_argument("--config", default=None, metavar="TABLE_SPEC",
                       help="a table spec of your own (e.g. one that _base_s A4 and adds rows)")
    _add_include(table)
    table.add_argument("--results", default=DEFAULT_RESULTS)
    table.add_argument("--format", default="markdown",
                       choices=["markdown", "csv", "latex", "json"])
    table.add_argument("--paper", action="store_true", help="show the paper's figures beside")
    table.add_argument("--family", default="synthref", choices=["synthref", "real"],
                       help="the embedded benchmark or the real datasets")
    table.add_argument("--ci", action="store_true",
                       help="95 %% cluster-bootstrap interval on every cell, rows not resolved from "
                            "the one above marked ≈↑, shape checks judged on intervals")
    _add_interval_options(table)

    compare = sub.add_parser("compare", parents=parents,
                             help="paired difference of two method specs, with interval and p-value")
    compare.add_argument("a", help="method spec A, e.g. sag")
    compare.add_argument("b", help="method spec B, e.g. tseg")
    compare.add_argument("--dataset", default="synthref")
    compare.add_argument("--split", default="val")
    compare.add_argument("--setting", default="tau=0.50", help="e.g. tau=0.50 or tau=0.50+crf")
    compare.add_argument("--seeds", default=None, help="comma-separated; default: those both stored")
    compare.add_argument("--results", default=DEFAULT_RESULTS)
    compare.add_argument("--format", default="markdown", choices=["markdown", "json"])
    _add_interval_options(compare)

    breakdown = sub.add_parser("breakdown", parents=parents,
                               help="mIoU and gap by target area, expression length, location "
                                    "words, objects in the image or category")
    breakdown.add_argument("--by", required=True,
                           help="area | length | location | objects | supercategory | category")
    breakdown.add_argument("--methods", default=None,
                           help="comma-separated method specs (default: the rows of --table)")
    breakdown.add_argument("--table", default="A4", help="whose rows to break down (default A4)")
    breakdown.add_argument("--setting", default=None, help="with --methods (default tau=0.50)")
    breakdown.add_argument("--dataset", default="synthref")
    breakdown.add_argument("--split", default="val")
    breakdown.add_argument("--data-root", default=None)
    breakdown.add_argument("--split-by", default=None)
    breakdown.add_argument("--results", default=DEFAULT_RESULTS)
    breakdown.add_argument("--format", default="markdown", choices=["markdown", "json"])
    _add_include(breakdown)
    _add_interval_options(breakdown)

    score = sub.add_parser("score", parents=parents, help="score prediction PNGs of any tool")
    score.add_argument("--dataset", required=True)
    score.add_argument("--data-root", default=None,
                       help="required for real datasets; synthref is generated into the cache")
    score.add_argument("--image-root", default=None)
    score.add_argument("--split-by", default=None)
    score.add_argument("--phrasecut-list", default=None, choices=["ris", "official"])
    score.add_argument("--split", required=True)
    score.add_argument("--predictions", required=True)
    score.add_argument("--tau", default="0.5")
    score.add_argument("--crf", action="store_true")
    score.add_argument("--limit", type=int, default=None)
    score.add_argument("--json", default=None, help="also write the result to this JSON file")

    check = sub.add_parser("check", parents=parents, help="compare the store to a reference")
    check.add_argument("--results", default=DEFAULT_RESULTS)
    check.add_argument("--reference", default=None,
                       help="the reference JSON (default: the harness's configs/reference/ci.json)")
    check.add_argument("--tolerance", type=float, default=0.5)
    check.add_argument("--update", action="store_true")
    check.add_argument("--only", action="append", default=[], metavar="GLOB",
                       help="check only the reference metrics (and gap floors) whose key matches this "
                            "fnmatch glob, e.g. 'synthref/sag/*' (repeatable)")
    check.add_argument("--tolerances-from", default=None, metavar="SPREAD_JSON",
                       help="set the reference's tolerances (and hold its gap floors) from a "
                            "kernel-spread study (benchmarks/bench_kernel_spread.py); alone it keeps "
                            "the reference's metrics, with --update it takes them from --results")

    figure = sub.add_parser("figure", parents=parents, help="qualitative figures")
    figure.add_argument("kind", choices=["entities"])
    figure.add_argument("--method", default=None, help="default: the first method that implements explain")
    figure.add_argument("--dataset", default="synthref")
    figure.add_argument("--data-root", default=None)
    figure.add_argument("--results", default=DEFAULT_RESULTS)
    figure.add_argument("--n", type=int, default=8)
    figure.add_argument("--out", default="entities.png")
    figure.add_argument("--slot-types", action="store_true",
                        help="Fig. A3: SaG's entity, random and query slots side by side (needs sag, "
                             "sag@random_slots and sag@query_slots trained with runtime.save_checkpoint=True)")
    _add_include(figure)

    doctor = sub.add_parser("doctor", parents=parents,
                            help="check the install, the embedded benchmark, real datasets and "
                                 "checkpoints before a long run")
    _add_include(doctor)
    doctor.add_argument("--data-root", default=None)
    doctor.add_argument("--image-root", default=None)
    doctor.add_argument("--phrasecut-list", default=None, choices=["ris", "official"])
    doctor.add_argument("--methods", default=None,
                        help="methods whose checkpoints to load (default: those the --set keys name)")
    doctor.add_argument("--set", dest="overrides", action="append", default=[], nargs="+",
                        metavar="KEY=VALUE", help="e.g. method.clip.checkpoint=/ckpt/ViT-B-16.pt")

    report = sub.add_parser("report", parents=parents, help="one Markdown report of the store")
    report.add_argument("--results", default=DEFAULT_RESULTS)
    report.add_argument("--out", default="report.md")
    report.add_argument("--html", default=None, metavar="OUT.html",
                        help="write one self-contained HTML page instead (tables, τ-curves, a "
                             "gallery of expressions that sorts and filters; harness/report/html_report.py)")
    report.add_argument("--gallery-n", type=int, default=200,
                        help="with --html: expressions per dataset in the gallery (the first N in dataset order)")
    report.add_argument("--gallery-split", default="val", help="with --html: the split the gallery shows")
    _add_include(report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", parents=[_debug_parent(False)],
                                     description="weakly supervised referring segmentation harness")
    parents = [_debug_parent(True)]
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", parents=parents, help="methods, datasets and tables")
    listing.add_argument("--data-root", default=None, help="where to look for real datasets")
    listing.add_argument("--table", action="append", default=[], metavar="TABLE_SPEC",
                         help="also show a table spec file of your own (repeatable)")
    _add_include(listing)
    data = sub.add_parser("data", parents=parents, help="generate the embedded benchmark")
    data.add_argument("kind", choices=["synthref"])
    data.add_argument("--variant", default="synthref",
                      choices=["synthref", "synthref+", "synthrefg"])
    data.add_argument("--out", default=None, help="folder (default: the cache)")
    data.add_argument("--seed", type=int, default=0)
    _add_run(sub, parents)
    _add_readers(sub, parents)
    return parser


def _pin_kernels() -> None:
    """`--reproducible`: pinned kernels, which take effect only if torch has not loaded yet."""
    from harness.errors import ConfigError
    from harness.numerics import KERNELS_ENV, apply_kernels

    if "torch" in sys.modules and os.environ.get(KERNELS_ENV) != "pinned":
        raise ConfigError(f"--reproducible: torch is already loaded in this process, so its CPU kernels "
                          f"are chosen; set {KERNELS_ENV}=pinned in the environment instead")
    apply_kernels("pinned")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; the exit status (0 ok, 1 internal failure, 2 user mistake)."""
    from harness import cli_commands
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        if getattr(args, "reproducible", False):
            _pin_kernels()
        return int(cli_commands.HANDLERS[args.command](args) or 0)
    except HarnessError as exc:
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(exc).split())  # one line, always
        print(f"error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug: the full traceback
        traceback.print_exc()
        return 1
