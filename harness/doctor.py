"""`python -m harness doctor`: before a long run, what is there, what is missing, what is wrong.

For each real dataset and split scheme (RefCOCO unc, RefCOCO+ unc, G-Ref google and umd,
PhraseCut) under `--data-root`: the annotation files load (refs pickle, instances.json, the
PhraseCut task list and image_data_split.json), the fields the readers need are there, every
split of the scheme is present, a sample of annotations rasterises and a sample of images exists.
For each checkpoint given with `--set method.<part>.checkpoint=PATH`: the methods whose real-data
config has that part are built on the CPU through their real loaders (the registry's class), and
the loader's error is shown if it fails.

With no argument at all it checks the install instead: every method module imports (the harness's
and yours), configs/ and the paper's figures are where the code reads them, and the embedded
benchmark generates (into the cache) and reads.

One line per dataset and method; the last line is "ready" or the number of problems (exit 2).
A dataset whose folder is absent is only reported (you may not need it); one that is there but
broken is a problem.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from harness import registry
from harness.data.datasets import dataset_info, open_split, phrasecut_folder
from harness.data.phrasecut import PHRASECUT_LISTS, ImageSizes, rasterise, read_tasks, task_list_file
from harness.data.refer import read_instances, read_refs, refer_files, segmentation_rle
from harness.doctor_checkpoints import check_checkpoints
from harness.errors import DataError, HarnessError
from harness.paths import configs_dir, paper_dir

REFER_CHECKS = (("refcoco", "unc"), ("refcoco+", "unc"), ("refcocog", "google"), ("refcocog", "umd"))
SAMPLE = 20                 # images checked and annotations rasterised per dataset
OK, ABSENT, PROBLEM = "ok", "absent", "PROBLEM"


@dataclass
class Finding:
    name: str
    status: str              # OK | ABSENT | PROBLEM
    lines: list = field(default_factory=list)


def run_doctor(data_root: Optional[Path], image_root: Optional[Path] = None, overrides=(),
               methods=None, phrasecut_list: Optional[str] = None, out=None) -> int:
    """Print the findings; 0 when ready, 2 when anything is wrong."""
    out = out or sys.stdout
    findings = []
    if data_root is not None:
        findings += [check_refer(data_root, name, split_by, image_root) for name, split_by in REFER_CHECKS]
        findings.append(check_phrasecut(data_root, image_root, phrasecut_list))
        if all(f.status == ABSENT for f in findings):
            findings.append(Finding("data root", PROBLEM, [f"{data_root}: no dataset found (see "
                                                           "README 'Real data' for the layout)"]))
    if overrides or methods:

        findings += [Finding(name, OK if ok else PROBLEM, [line])
                     for name, ok, line in check_checkpoints(list(overrides), methods, data_root)]
    if not findings:
        findings = check_install()
    width = max(len(f.name) for f in findings)
    for finding in findings:
        head, *rest = finding.lines or [""]
        print(f"{finding.name:<{width}}  {finding.status:<7}  {head}", file=out)
        for line in rest:
            print(f"{'':<{width}}  {'':<7}  {line}", file=out)
    problems = [f for f in findings if f.status == PROBLEM]
    if problems:
        print(f"{len(problems)} problem(s): {', '.join(f.name for f in problems)}", file=out)
        return 2
    print("ready", file=out)
    return 0


def check_install() -> list[Finding]:
    """The install and the embedded benchmark: what a first `run` needs."""
    findings = []
    try:
        names = registry.method_names()
        findings.append(Finding("methods", OK, [", ".join(names)]))
    except HarnessError as exc:
        findings.append(Finding("methods", PROBLEM, [str(exc)]))
    for label, folder in (("configs", configs_dir()), ("paper figures", paper_dir())):
        present = folder.is_dir() and any(folder.iterdir())
        findings.append(Finding(label, OK if present else PROBLEM,
                                [f"{folder}" + ("" if present else ": not found (reinstall: pip install "
                                                                   "-c constraints.txt -e .)")]))
    try:
        val = open_split("synthref", "val")
        findings.append(Finding("synthref", OK, [f"{len(val)} val expressions under {val.root}"]))
    except HarnessError as exc:
        findings.append(Finding("synthref", PROBLEM, [str(exc)]))
    findings.append(Finding("next", OK, ["give --data-root DIR to check real datasets, "
                                         "--set method.<part>.checkpoint=PATH for checkpoints"]))
    return findings


def check_refer(data_root: Path, name: str, split_by: str, image_root: Optional[Path]) -> Finding:
    """One REFER dataset under one split scheme."""
    label = f"{name} ({split_by})"
    if not (Path(data_root) / name).is_dir():
        return Finding(label, ABSENT, [f"{Path(data_root) / name}/ not found"])
    if not (Path(data_root) / name / f"refs({split_by}).p").is_file() and _other_scheme_present(data_root, name, split_by):
        return Finding(label, ABSENT, [f"refs({split_by}).p not found (another scheme is there)"])
    try:
        refs_file, instances_file = refer_files(data_root, name, split_by)
        refs = read_refs(refs_file)
        images, annotations = read_instances(instances_file)
        lines = [_refs_summary(refs, dataset_info(name).schemes[split_by].splits, refs_file)
                 + f"; {instances_file.name}: {len(images)} images, {len(annotations)} annotations"]
        lines += _refer_samples(refs, images, annotations, instances_file, refs_file,
                                Path(image_root) if image_root else Path(data_root) / dataset_info(name).image_dir)
    except HarnessError as err:
        return Finding(label, PROBLEM, [str(err)])
    return Finding(label, OK, lines)


def _other_scheme_present(data_root: Path, name: str, split_by: str) -> bool:
    return any(p.name != f"refs({split_by}).p" for p in (Path(data_root) / name).glob("refs(*).p"))


def _refs_summary(refs: list, splits: tuple, refs_file: Path) -> str:
    counts: dict = {}
    for ref in refs:
        counts[ref["split"]] = counts.get(ref["split"], 0) + 1
        for sent in ref["sentences"]:
            if not isinstance(sent, dict) or "sent_id" not in sent or "sent" not in sent:
                raise DataError(refs_file, f"ref {ref['ref_id']}: a sentence lacks sent_id or sent")
    missing = [s for s in splits if s not in counts]
    if missing:
        raise DataError(refs_file, f"no refs in split(s) {', '.join(missing)}; splits present: "
                                   f"{', '.join(sorted(map(str, counts)))}")
    sentences = sum(len(ref["sentences"]) for ref in refs)
    per_split = ", ".join(f"{s} {counts[s]}" for s in splits)
    return f"{refs_file.name}: {len(refs)} refs, {sentences} sentences ({per_split} refs)"


def _refer_samples(refs, images, annotations, instances_file, refs_file, image_root: Path) -> list[str]:
    """Sampled refs point at annotations that decode and at images that exist."""
    step = max(1, len(refs) // SAMPLE)
    sampled = refs[::step][:SAMPLE]
    files = set()
    for ref in sampled:
        ann, image = annotations.get(ref["ann_id"]), images.get(ref["image_id"])
        if ann is None or image is None:
            what = f"annotation {ref['ann_id']}" if ann is None else f"image {ref['image_id']}"
            raise DataError(refs_file, f"ref {ref['ref_id']} points at {what}, which {instances_file} does not hold")
        segmentation_rle(ann.get("segmentation"), int(image["height"]), int(image["width"]),
                         where=f"annotation {ann['id']} in {instances_file}")
        files.add(image_root / image["file_name"])
    missing_images = sorted(path for path in files if not path.is_file())
    if missing_images:
        raise DataError(missing_images[0], f"image not found ({len(missing_images)} of {len(files)} "
                                           "sampled images missing; give the folder with --image-root)")
    return [f"{len(sampled)} sampled annotations decode; their images are in {image_root}"]


def check_phrasecut(data_root: Path, image_root: Optional[Path], task_list: Optional[str]) -> Finding:
    """PhraseCut's val list (and train's, if there), sizes file, a sample of images and masks."""
    folder = phrasecut_folder(Path(data_root))
    if not any(folder.glob("refer_*.json")):
        return Finding("phrasecut", ABSENT, [f"no refer_<split>.json in {folder}"])
    images = Path(image_root) if image_root else folder / "images"
    try:
        path, chosen = task_list_file(folder, "val", task_list)
        _, tasks = read_tasks(folder, "val", task_list)
        others = [n for n in PHRASECUT_LISTS if n != chosen
                  and (folder / PHRASECUT_LISTS[n].format(split="val")).is_file()]
        lines = [f"{path.name}: {len(tasks)} val tasks (list {chosen!r}"
                 + (f"; {PHRASECUT_LISTS[others[0]].format(split='val')} also there: "
                    f"--phrasecut-list {others[0]})" if others else ")")]
        sizes = ImageSizes(folder, images)
        lines.append(f"sizes from {sizes.source.name}" if sizes.source else
                     "image_data_split.json not found: sizes from the JPEG headers (the official "
                     "evaluation uses image_data_split.json)")
        lines.append(_phrasecut_samples(tasks, sizes, images, path, rasterise))
    except HarnessError as err:
        return Finding("phrasecut", PROBLEM, [str(err)])
    return Finding("phrasecut", OK, lines)


def _phrasecut_samples(tasks, sizes, images: Path, path: Path, rasterise) -> str:
    step = max(1, len(tasks) // SAMPLE)
    sampled = tasks[::step][:SAMPLE]
    files = {images / f"{t['image_id']}.jpg" for t in sampled}
    missing = sorted(path for path in files if not path.is_file())
    if missing:
        raise DataError(missing[0], f"image not found ({len(missing)} of {len(files)} sampled "
                                    "images missing; give the folder with --image-root)")
    for task in sampled:
        height, width = sizes.of(task["image_id"])
        rasterise(task["Polygons"], height, width, where=f"task {task['task_id']} in {path}")
    return f"{len(sampled)} sampled tasks rasterise; their images are in {images}"
