"""Exported TorchScript vs eager outputs for all four model kinds; contract round trip."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from geosentry.stream.inference.contract import ModelContract, sha256_file
from geosentry.training.export import export_model, export_tiny_picker, verify_export
from geosentry.training.export.exporter import example_inputs
from geosentry.training.models import ConvAutoencoder, EventDetector, Generator, PhasePicker

CASES = {
    "picker": (lambda: PhasePicker(channels=(4, 8, 8), window_samples=400), 400, ("P", "S", "N"),
               {"P": 0.3, "S": 0.3}, 1),
    "detector": (lambda: EventDetector(window_samples=500, hidden=8), 500, ("event",), {"event": 0.5}, 10),
    "anomaly": (lambda: ConvAutoencoder(window_samples=256, channels=(8, 8)), 256, ("anomaly",),
                {"anomaly": 1.5}, 1),
    "generator": (lambda: Generator(window_samples=256, base=16, n_up=3), 256, ("noise", "event"), {}, 1),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_exported_matches_eager(kind: str, tmp_path: Path) -> None:
    build, window, labels, thr, step = CASES[kind]
    torch.manual_seed(0)
    model = build().eval()
    pt, js = export_model(model, name=f"t-{kind}", kind=kind, sampling_rate_hz=100.0,
                          components=("Z", "N", "E"), window_samples=window,
                          stride_samples=window // 2, labels=labels, thresholds=thr,
                          out_dir=tmp_path, output_step_samples=step,
                          metrics={"note": "test"})
    contract = verify_export(pt)
    assert contract.kind == kind and contract.file == pt.name
    assert contract.sha256 == sha256_file(pt)
    assert contract.training["export_parity_max_abs_diff"] <= 1e-4
    loaded = torch.jit.load(str(pt)).eval()
    inputs = example_inputs(kind, model, 3, window, batch=3, seed=7)
    with torch.no_grad():
        assert torch.allclose(model(*inputs), loaded(*inputs), atol=1e-5)


def test_contract_round_trip(tmp_path: Path) -> None:
    pt, js = export_tiny_picker(tmp_path)
    raw = json.loads(js.read_text())
    assert raw["contract"] == "geosentry.model.v1"
    c = ModelContract.load(js)
    assert ModelContract.from_dict(c.to_dict()) == c
    assert c.components == ("Z", "N", "E") and c.labels == ("P", "S", "N")
    assert c.window_samples == 400 and c.stride_samples == 200
    assert set(c.thresholds) == {"P", "S"}
    assert set(c.versions) == {"torch", "numpy", "geosentry"}


def test_tiny_picker_is_fast_and_deterministic(tmp_path: Path) -> None:
    export_tiny_picker(tmp_path / "warm")  # first call pays for scripting machinery
    t0 = time.perf_counter()
    pt1, _ = export_tiny_picker(tmp_path / "a", window_samples=600, stride_samples=300)
    assert time.perf_counter() - t0 < 2.0
    pt2, _ = export_tiny_picker(tmp_path / "b", window_samples=600, stride_samples=300)
    x = torch.randn(2, 3, 600)
    m1, m2 = torch.jit.load(str(pt1)), torch.jit.load(str(pt2))
    y = m1(x)
    assert y.shape == (2, 3, 600)
    assert torch.equal(y, m2(x))


def test_tampered_weights_fail_verification(tmp_path: Path) -> None:
    pt, _ = export_tiny_picker(tmp_path)
    with open(pt, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(AssertionError, match="sha256"):
        verify_export(pt)


def test_wrong_output_shape_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="output shape"):
        export_model(PhasePicker(channels=(4, 8)), name="bad", kind="detector",
                     sampling_rate_hz=100.0, components=("Z", "N", "E"), window_samples=400,
                     stride_samples=200, labels=("event",), thresholds={}, out_dir=tmp_path,
                     output_step_samples=10)


@pytest.mark.parametrize("layout", [dict(channels=(4, 8, 8), kernel=5),
                                    dict(channels=(4, 8, 16), kernel=7, down_stride=4,
                                         widen_first=False)])
def test_picker_forward_range_matches_forward_everywhere(layout: dict) -> None:
    """Every range, at the edges and across level boundaries, equals the full forward's slice
    (eager and scripted), for both U-Net layouts and a window length that pads levels."""
    torch.manual_seed(0)
    net = PhasePicker(window_samples=401, **layout).eval()
    scripted = torch.jit.script(net)
    x = torch.randn(3, 3, 401)
    with torch.no_grad():
        full = net(x)
        for a, b in [(0, 1), (0, 401), (400, 401), (3, 9), (97, 305), (200, 201), (390, 500)]:
            want = full[:, :, a:min(b, 401)]
            assert torch.allclose(net.forward_range(x, a, b), want, atol=1e-6)
            assert torch.allclose(scripted.forward_range(x, a, b), want, atol=1e-6)


def test_reexport_keeps_weights_and_contract(tmp_path: Path) -> None:
    """``export picker --from-model``: same outputs as the old file, contract carried over with
    the old hash recorded, ``forward_range`` added."""
    from geosentry.training.cli import main

    pt, js = export_tiny_picker(tmp_path / "old")
    raw = json.loads(js.read_text())
    raw["forward_range"] = False  # as an export made before forward_range existed
    raw["precisions"] = {"bf16": {"tolerance": 0.05, "evidence": {"accepted": True}}}
    js.write_text(json.dumps(raw))
    assert main(["export", "picker", "--from-model", str(pt), "--out", str(tmp_path / "new")]) == 0
    new = verify_export(tmp_path / "new" / pt.name)
    assert new.forward_range and new.precisions == raw["precisions"]
    assert new.thresholds == raw["thresholds"] and new.training["seed"] == raw["training"]["seed"]
    assert new.training["reexported"]["from_sha256"] == raw["sha256"]
    assert new.training["reexported"]["parity_vs_old_max_abs_diff"] <= 1e-5
    x = torch.randn(2, 3, 400)
    with torch.no_grad():
        old_y = torch.jit.load(str(pt))(x)
        new_y = torch.jit.load(str(tmp_path / "new" / pt.name))(x)
    assert torch.allclose(old_y, new_y, atol=1e-6)


def test_failed_reexport_leaves_the_old_files(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-export that does not reproduce the old outputs (fault injected: the parity check
    reports a difference) raises and leaves the model and its contract untouched in place."""
    import geosentry.training.export.reexport as reexport

    pt, js = export_tiny_picker(tmp_path)
    before = (pt.read_bytes(), js.read_text())
    monkeypatch.setattr(reexport, "parity_check", lambda *a: 0.5)
    with pytest.raises(AssertionError, match="left as it was"):
        reexport.reexport_picker(pt, tmp_path, "test")
    assert (pt.read_bytes(), js.read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([pt.name, js.name])
