"""The CI gate against the committed reference catches a method broken the way a bad change would.

Each test runs the gate's own run (the ci profile, seed 0, synthref val) of one method with a
defect injected, then `check` against configs/reference/ci.json — the file `.ci/run` gates on,
with its measured tolerances and grounding-gap floors — restricted to that method and split.
The unbroken run of the same method passes where it is cheap to run (MaskCLIP zero-shot has no
fit); for SaG and TSEG `.ci/run` itself is that run. Platform noise passing the same gate is
tests/test_gate_portability.py.
"""

from pathlib import Path

import torch

from harness.report.check import run_check
from harness.run.runner import RunOptions, run_many

REFERENCE = Path(__file__).resolve().parents[1] / "configs" / "reference" / "ci.json"


def _gate(spec: str, out: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    opts = RunOptions(dataset="synthref", profile="ci", splits=["val"], out=out, progress=False, crf_workers=1)
    run_many([spec], [0], opts)
    capsys.readouterr()
    status = run_check(out, REFERENCE, only=[f"synthref/{spec}/seed0/val/*"])
    return status, capsys.readouterr().out


def test_maskclip_whose_dense_path_ignores_the_text_fails_and_the_real_one_passes(tmp_path, capsys, monkeypatch):
    status, report = _gate("maskclip@zeroshot", tmp_path / "real", capsys)
    assert status == 0, report
    assert "grounding gaps at or above their floors" in report

    from baselines.maskclip import MaskCLIP

    encode = MaskCLIP.encode_expressions
    monkeypatch.setattr(MaskCLIP, "encode_expressions",
                        lambda self, texts: encode(self, ["object"] * len(texts)))
    status, report = _gate("maskclip@zeroshot", tmp_path / "broken", capsys)
    assert status == 1
    # The words no longer matter: the gap is exactly 0, far below the floor.
    assert "synthref/maskclip@zeroshot: gap 0.00" in report and "(below)" in report


def test_sag_whose_fusion_is_fed_a_constant_text_fails(tmp_path, capsys, monkeypatch):
    from sag_model.fusion import ModalityFusion

    forward = ModalityFusion.forward
    monkeypatch.setattr(ModalityFusion, "forward",
                        lambda self, text, slots, all_pairs=True: forward(self, torch.ones_like(text), slots, all_pairs))
    status, report = _gate("sag", tmp_path / "broken", capsys)
    assert status == 1
    assert "synthref/sag/seed0/val/tau=0.50/mIoU" in report and "moved" in report


def test_tseg_with_its_loss_sign_flipped_fails(tmp_path, capsys, monkeypatch):
    import baselines.tseg as tseg

    loss = tseg.mlpa_loss
    monkeypatch.setattr(tseg, "mlpa_loss", lambda *args, **kwargs: -loss(*args, **kwargs))
    status, report = _gate("tseg", tmp_path / "broken", capsys)
    assert status == 1
    assert "synthref/tseg/seed0/val/tau=0.50/mIoU" in report and "moved" in report
    assert "synthref/tseg: gap" in report and "(below)" in report

