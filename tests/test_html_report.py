"""`report --html` (harness/report/html_report.py, html_gallery.py, html_assets.py): the page's data
from a tiny real store, then the page itself in a headless Chromium — it loads with no script
error, holds the gallery's items, and a filter, a search and the sorts change them as computed
here from the store and the attributes frame. The browser tests install Debian's `chromium` when
it is missing and are skipped (saying why) only when that fails.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.cli import main
from harness.data.datasets import open_split
from harness.report.html_report import cell_html, tau_curves
from harness.report.sample_attributes import sample_attributes

LIMIT, GALLERY_N = 40, 30
A, B = "maskclip@zeroshot", "whole"     # A: maps raw and +crf; B: raw maps only; objects: none


# ---------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Smoke runs on synthref val (40 expressions, τ 0.3 and 0.5): A with its maps raw and after
    DenseCRF, B with its raw maps, objects without maps."""
    out = tmp_path_factory.mktemp("html_store")
    common = ["--profile", "smoke", "--seeds", "0", "--splits", "val", "--limit", str(LIMIT),
              "--taus", "0.3,0.5", "--out", str(out), "--no-progress"]
    assert main(["run", "--methods", A, *common, "--crf", "--crf-workers", "1", "--save-predictions"]) == 0
    assert main(["run", "--methods", B, *common, "--save-predictions"]) == 0
    assert main(["run", "--methods", "objects", *common]) == 0
    return out


@pytest.fixture(scope="module")
def page(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html_page") / "report.html"
    assert main(["report", "--results", str(store), "--html", str(out),
                 "--gallery-n", str(GALLERY_N)]) == 0
    return out


@pytest.fixture(scope="module")
def data(page) -> dict:
    text = page.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="gallery-data">(.*?)</script>', text, re.S)
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def included(data) -> pd.DataFrame:
    """The attributes frame of the gallery's items (its first GALLERY_N expressions)."""
    frame = sample_attributes("synthref", "val").head(GALLERY_N)
    return frame.assign(sample_id=frame["sample_id"].astype(str))


def stored_iou(store: Path, spec: str, setting: str) -> dict:
    frame = pd.read_csv(store / "synthref" / spec / "seed0" / "samples.csv", dtype={"sample_id": str})
    frame = frame[(frame["split"] == "val") & (frame["setting"] == setting)]
    return dict(zip(frame["sample_id"], frame["IoU"]))


def decode(uri: str, kind: str = "png") -> np.ndarray:
    assert uri.startswith(f"data:image/{kind};base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


# ----------------------------------------------------------------------------- page content

def test_page_is_self_contained(page):
    text = page.read_text(encoding="utf-8")
    references = re.findall(r'\b(?:src|href)="([^"]*)"', text)
    assert references and all(r.startswith(("data:", "#")) for r in references), references
    assert "<script src" not in text and "@import" not in text and "url(http" not in text


def test_gallery_holds_the_first_expressions_with_the_stored_ious(store, data, included):
    (gallery,) = data["galleries"]
    assert (gallery["dataset"], gallery["split"]) == ("synthref", "val")
    assert (gallery["n"], gallery["n_evaluated"]) == (GALLERY_N, LIMIT)
    expected_ids = [str(s.sample_id) for s in open_split("synthref", "val").samples[:GALLERY_N]]
    assert [item["id"] for item in gallery["items"]] == expected_ids
    assert gallery["settings"] == ["tau=0.30", "tau=0.50", "tau=0.30+crf", "tau=0.50+crf"]
    assert gallery["default_setting"] == "tau=0.50"
    assert [m["spec"] for m in gallery["methods"]] == [A, "objects", "whole"]
    assert set(gallery["iou"][B]) == {"tau=0.30", "tau=0.50"}
    for spec in (A, "objects", "whole"):
        for setting in gallery["iou"][spec]:
            stored = stored_iou(store, spec, setting)
            assert gallery["iou"][spec][setting] == [round(stored[i], 4) for i in expected_ids]
    assert [item["bins"]["area_bin"] for item in gallery["items"]] == list(included["area_bin"])


def test_maps_are_the_stored_pngs_and_a_run_without_them_says_how_to_save_them(store, data):
    (gallery,) = data["galleries"]
    methods = {m["spec"]: m for m in gallery["methods"]}
    assert methods[A]["maps"] and methods["whole"]["maps"] and not methods["objects"]["maps"]
    command = methods["objects"]["command"]
    assert "--methods objects" in command and "--save-predictions" in command
    assert f"--limit {LIMIT}" in command and f"--out {store}" in command
    item = gallery["items"][3]
    assert item["maps"]["objects"] is None and set(item["crf_maps"]) == {A}
    run = store / "synthref" / A / "seed0"
    for folder, maps in (("val", item["maps"]), ("val+crf", item["crf_maps"])):
        stored = np.asarray(Image.open(run / "predictions" / folder / f"{item['id']}.png"))
        assert np.array_equal(decode(maps[A]), stored)             # 64 × 64: embedded as stored
    assert not np.array_equal(decode(item["maps"][A]), decode(item["crf_maps"][A]))
    ds = open_split("synthref", "val")
    index = [str(s.sample_id) for s in ds.samples].index(item["id"])
    image = decode(item["image"], "jpeg").astype(float)             # JPEG: close, not equal
    assert image.shape == (64, 64, 3) and np.abs(image - ds.image(index)).mean() < 8
    outline = decode(item["outline"]) > 127
    mask = ds.mask(index)
    assert outline.any() and not (outline & ~mask).any() and outline.sum() < mask.sum()


def test_tau_curves_are_the_stored_means(store):
    curves = tau_curves(store)["synthref"]
    assert set(curves) == {A, "objects", "whole"}
    metrics = json.loads((store / "synthref" / A / "seed0" / "metrics.json").read_text())
    expected = [(t, metrics["splits"]["val"][f"tau={t:.2f}"]["mIoU"]) for t in (0.3, 0.5)]
    assert curves[A][False] == pytest.approx(expected)


def test_a_gallery_of_no_expressions_is_refused(store, tmp_path, capsys):
    assert main(["report", "--results", str(store), "--html", str(tmp_path / "r.html"),
                 "--gallery-n", "0"]) == 2
    assert "--gallery-n 0" in capsys.readouterr().err and not (tmp_path / "r.html").exists()


def test_cell_shows_the_interval_and_the_same_as_above_mark_when_present():
    cell = dict(mean=34.5, std=0.25, n=3, configs=1, stale=0, paper=35.0)
    plain = cell_html(cell)
    assert "34.50 ± 0.25 (n=3)" in plain and "paper 35.00" in plain and "95 %" not in plain
    marked = cell_html({**cell, "ci_lo": 33.1, "ci_hi": 35.9, "same_as_above": True})
    assert "95 % [33.10, 35.90]" in marked and "≈ row above" in marked


# -------------------------------------------------------------------------------- the browser

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def _find_chromium():
    return next((shutil.which(name) for name in CHROMIUM_NAMES if shutil.which(name)), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing; a skip saying why when it cannot be."""
    found = _find_chromium()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and apt-get cannot install it here (not root or no apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    attempts = (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "chromium"])
    said = ""
    for command in attempts:
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            said = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        except (OSError, subprocess.TimeoutExpired) as exc:
            said = [str(exc)]
        if _find_chromium():
            return _find_chromium()
    pytest.skip(f"chromium could not be installed with apt-get: {said[0]}")


def browse(chromium: str, page: Path, tmp_path: Path, hash_params: dict = None, screenshot: Path = None):
    """(DOM after the scripts ran, Chromium's stderr) of the page at `#hash_params`, or the
    screenshot (1400 × 1000) when `screenshot` is given."""
    url = page.resolve().as_uri() + ("#" + urlencode(hash_params) if hash_params else "")
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    command = [chromium, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
               "--virtual-time-budget=10000"]
    command += [f"--screenshot={screenshot}", "--window-size=1400,1000"] if screenshot else ["--dump-dom"]
    done = subprocess.run(command + [url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


class Items(HTMLParser):
    """The #status element's attributes, the gallery's cards (id, hidden) in document order and
    whether each map/mask pair is hidden."""

    def __init__(self, dom: str):
        super().__init__()
        self.status, self.cards, self.pairs_hidden = {}, [], []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id") == "status":
            self.status = attrs
        if tag == "div" and attrs.get("class") == "item":
            self.cards.append((attrs["data-id"], "hidden" in attrs))
        if tag == "div" and attrs.get("class") == "pair":
            self.pairs_hidden.append("hidden" in attrs)

    @property
    def visible(self) -> list[str]:
        return [card for card, hidden in self.cards if not hidden]


def loaded(chromium, page, tmp_path, hash_params=None) -> Items:
    dom, stderr = browse(chromium, page, tmp_path, hash_params)
    console = [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    items = Items(dom)
    assert items.status.get("data-errors") == "0", items.status.get("data-last-error")
    assert items.status.get("data-ready") == "1" and items.status["data-items"] == str(GALLERY_N)
    assert len(items.cards) == GALLERY_N
    assert items.status["data-visible"] == str(len(items.visible))
    return items


def test_page_loads_with_every_item_drawn_and_no_console_error(chromium, page, data, tmp_path):
    items = loaded(chromium, page, tmp_path)
    assert items.visible == [item["id"] for item in data["galleries"][0]["items"]]
    assert items.status["data-rendered"] == str(GALLERY_N)   # every card's canvases drawn
    assert items.pairs_hidden == [False, False] * GALLERY_N     # A's and B's; objects has none


def test_a_crf_setting_shows_the_crf_figures_and_says_which_methods_lack_it(
        chromium, page, store, included, tmp_path):
    ids = list(included["sample_id"])
    crf = stored_iou(store, A, "tau=0.50+crf")
    worst = sorted(ids, key=lambda i: (round(crf[i], 4), ids.index(i)))
    raw = stored_iou(store, A, "tau=0.50")
    assert worst != sorted(ids, key=lambda i: (round(raw[i], 4), ids.index(i)))
    shown = loaded(chromium, page, tmp_path, {"setting": "tau=0.50+crf", "sort": "worst", "a": A})
    assert shown.visible == worst
    assert shown.pairs_hidden == [False, True] * GALLERY_N      # B has no +crf map: a note instead


def test_a_breakdown_filter_and_a_search_change_the_items(chromium, page, included, tmp_path):
    large = list(included.loc[included["area_bin"] == "large", "sample_id"])
    assert 0 < len(large) < GALLERY_N
    assert loaded(chromium, page, tmp_path, {"filter": "area_bin:large"}).visible == large
    words = "big"
    found = list(included.loc[included["text"].str.lower().str.contains(words), "sample_id"])
    assert 0 < len(found) < GALLERY_N
    both = [i for i in found if i in large]
    assert loaded(chromium, page, tmp_path, {"filter": "area_bin:large", "q": words}).visible == both


def test_sorting_by_one_method_and_by_the_difference_of_two(chromium, page, store, included, tmp_path):
    ids = list(included["sample_id"])
    iou_a, iou_b = stored_iou(store, A, "tau=0.30"), stored_iou(store, B, "tau=0.30")
    a = {i: round(iou_a[i], 4) for i in ids}
    b = {i: round(iou_b[i], 4) for i in ids}
    worst = sorted(ids, key=lambda i: (a[i], ids.index(i)))
    assert worst != ids
    shown = loaded(chromium, page, tmp_path, {"setting": "tau=0.30", "sort": "worst", "a": A})
    assert shown.visible == worst and shown.status["data-first"] == worst[0]
    gap = sorted(ids, key=lambda i: (-(a[i] - b[i]), ids.index(i)))
    assert gap != worst
    params = {"setting": "tau=0.30", "sort": "diff", "a": A, "b": B}
    assert loaded(chromium, page, tmp_path, params).visible == gap


def test_screenshot_of_the_filtered_gallery(chromium, page, tmp_path):
    png = tmp_path / "report_html.png"
    browse(chromium, page, tmp_path, {"view": "gallery", "filter": "area_bin:large"}, screenshot=png)
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape[:2] == (1000, 1400)
    assert pixels.std() > 20     # drawn, not a blank page
