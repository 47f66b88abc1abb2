# Supplementary Table A4: SaG against the baselines, raw and with DenseCRF (†), mIoU.
# Written with the embedded names; `--family real` maps synthref→refcoco, synthref+→refcoco+,
# synthrefg→refcocog and adds PhraseCut (see harness/report/table_specs.py).
title = "Table A4 — comparison with other methods, with DenseCRF (†); mIoU (%)"
paper_csv = "A4.csv"
metric = "mIoU"
setting = "tau=0.50"

_RAW, _CRF = "tau=0.50", "tau=0.50+crf"
rows = [
    dict(key="whole", label="whole image (floor)", method="whole"),
    dict(key="objects", label="objects (oracle floor)", method="objects"),
    dict(key="groupvit@zeroshot", label="GroupViT (zero-shot)", method="groupvit@zeroshot",
         paper_csv="T1.csv", paper={"method": "GroupViT", "fine-tuned": "no"}),
    dict(key="maskclip@zeroshot", label="MaskCLIP (zero-shot)", method="maskclip@zeroshot",
         paper_csv="T1.csv", paper={"method": "MaskCLIP", "fine-tuned": "no"}),
    dict(key="groupvit", label="GroupViT", method="groupvit", paper="GroupViT"),
    dict(key="maskclip", label="MaskCLIP", method="maskclip", paper="MaskCLIP"),
    dict(key="tseg", label="TSEG", method="tseg", paper="TSEG"),
    dict(key="tseg†", label="TSEG†", method="tseg", setting=_CRF, paper="TSEG†"),
    dict(key="sag", label="SaG (ours)", method="sag", paper="Ours"),
    dict(key="sag†", label="SaG (ours)†", method="sag", setting=_CRF, paper="Ours†"),
    # The release's recipe as its own row (issue 24): on synthref the default deviates from it
    # (README, Deviations); on real data the two are one config and share their fits.
    dict(key="sag@release", label="SaG, release recipe", method="sag@release", paper="Ours"),
]

columns = [
    dict(key="RefCOCO val", dataset="synthref", split="val", paper="RefCOCO val"),
    dict(key="RefCOCO testA", dataset="synthref", split="testA", paper="RefCOCO testA"),
    dict(key="RefCOCO testB", dataset="synthref", split="testB", paper="RefCOCO testB"),
    dict(key="RefCOCO+ val", dataset="synthref+", split="val", paper="RefCOCO+ val"),
    dict(key="RefCOCO+ testA", dataset="synthref+", split="testA", paper="RefCOCO+ testA"),
    dict(key="RefCOCO+ testB", dataset="synthref+", split="testB", paper="RefCOCO+ testB"),
    dict(key="G-Ref val", dataset="synthrefg", split="val", paper="G-Ref val"),
    dict(key="PhraseCut val", dataset="phrasecut", split="val", paper="PhraseCut val",
         families=["real"]),
    # Did the method use the words? (harness/eval/metrics.py; no paper reports these.) On each val split:
    # the grounding gap (mIoU against the right object − against another object of the image)
    # and pointing (share of expressions whose map peaks inside the target).
    dict(key="RefCOCO val gap", dataset="synthref", split="val", metric="gap"),
    dict(key="RefCOCO+ val gap", dataset="synthref+", split="val", metric="gap"),
    dict(key="G-Ref val gap", dataset="synthrefg", split="val", metric="gap"),
    dict(key="PhraseCut val gap", dataset="phrasecut", split="val", metric="gap",
         families=["real"]),
    dict(key="RefCOCO val pointing", dataset="synthref", split="val", metric="pointing"),
    dict(key="RefCOCO+ val pointing", dataset="synthref+", split="val", metric="pointing"),
    dict(key="G-Ref val pointing", dataset="synthrefg", split="val", metric="pointing"),
    dict(key="PhraseCut val pointing", dataset="phrasecut", split="val", metric="pointing",
         families=["real"]),
]
_MIOU_COLUMNS = [c["key"] for c in columns if "metric" not in c]
_GAP_COLUMNS = [c["key"] for c in columns if c.get("metric") == "gap"]

_SEEDS = [0, 1, 2]
# Every method is thresholded at τ = 0.1…0.9 in its one prediction pass: the table shows τ = 0.5,
# the calibration table C1 (configs/tables/C1.py) the whole τ-curve from the same runs.
_TAUS = [round(0.1 * k, 1) for k in range(1, 10)]
runs = [
    # The floors never train and are deterministic: one seed says all.
    dict(method="whole", seeds=[0], taus=_TAUS, crf=False, profile="full"),
    dict(method="objects", seeds=[0], taus=_TAUS, crf=False, profile="full"),
    dict(method="groupvit@zeroshot", seeds=_SEEDS, taus=_TAUS, crf=False, profile="full"),
    dict(method="maskclip@zeroshot", seeds=_SEEDS, taus=_TAUS, crf=False, profile="full"),
    dict(method="groupvit", seeds=_SEEDS, taus=_TAUS, crf=False, profile="full"),
    dict(method="maskclip", seeds=_SEEDS, taus=_TAUS, crf=False, profile="full"),
    dict(method="tseg", seeds=_SEEDS, taus=_TAUS, crf=True, profile="full"),
    dict(method="sag", seeds=_SEEDS, taus=_TAUS, crf=True, profile="full"),
    dict(method="sag@release", seeds=_SEEDS, taus=_TAUS, crf=False, profile="full"),
]

checks = [
    dict(kind="order", name="ranking SaG > TSEG > MaskCLIP > GroupViT",
         rows=["sag", "tseg", "maskclip", "groupvit"], columns=_MIOU_COLUMNS),
    dict(kind="at_least", name="DenseCRF gain († ≥ raw) for SaG and TSEG",
         pairs=[["sag†", "sag"], ["tseg†", "tseg"]], columns=_MIOU_COLUMNS),
    dict(kind="min_value", name="grounding gap ≥ 5 for every fine-tuned method (GroupViT, "
         "MaskCLIP, TSEG, SaG, raw maps; not the floors, which ignore the words, nor the "
         "zero-shot rows)", rows=["groupvit", "maskclip", "tseg", "sag"], min=5.0,
         columns=_GAP_COLUMNS),
]

footnotes = [
    "† = the same predictions post-processed by DenseCRF (setting tau=0.50+crf).",
    "On the embedded family synthref, synthref+ and synthrefg stand in for RefCOCO, RefCOCO+ "
    "and G-Ref; the paper's figures (real data) are not comparable to them, only the shape is.",
    "TSEG is a reconstruction: no public code exists (shared/specs/tseg.md).",
    "± is the std over training seeds. The paper averages 3 experiments whose std is \"always "
    "less than 0.06\", from \"randomness when sampling the entity slots\": that is SaG's "
    "inference ± (test-time slot draws of one trained model, protocol.inference_draws), not ours "
    "over training seeds — compare it with the inference ±.",
    "objects is an oracle: it reads the eval annotations (never the expression); whole "
    "predicts the full image. Both are floors, deterministic, run with one seed.",
    "Zero-shot rows are set beside the paper's Table 1 (not fine-tuned) figures.",
    "gap = grounding gap: mIoU of each expression's map against its own object minus against "
    "another object of the same image (ref level; 0 for a method that ignores the words, as "
    "the floors do). pointing = % of expressions whose map peaks inside the target. Both per "
    "split and setting in metrics.json; README, Protocol and metrics.",
]
