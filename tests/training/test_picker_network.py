"""The network-imitating augmentation of ``training.train.picker_network`` (``evaluate
picker-lono --recipe network``): batches stay valid windows and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import find_peaks

from geosentry.training.train.common import prepare_seismic
from geosentry.training.train.picker_network import NetworkPickerTask, coloured_noise, response


def test_network_augmentation_gives_valid_windows_and_labels(no_shared: Path) -> None:
    data = prepare_seismic(0, limit=12)  # synthetic fallback events (no shared data here)
    task = NetworkPickerTask(data, window=400, batch=64, channels=(4, 8, 8))
    x, y = task.sample(np.random.default_rng(0))
    assert x.shape == (64, 3, 400) and y.shape == (64, 3, 400)
    assert np.isfinite(x).all() and (y >= 0).all() and (y <= 1).all()
    assert np.allclose(y.sum(axis=1)[y[:, :2].sum(axis=1) <= 1], 1.0, atol=1e-5)
    live = np.abs(x).max(axis=2) > 0
    assert np.allclose(x.std(axis=2)[live], 1.0, atol=1e-3)  # std-normalised, as the service
    p_peaks = [len(find_peaks(row[0], height=0.9, distance=50)[0]) for row in y]
    assert max(p_peaks) == 2  # some windows hold a second event's P
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 400)).astype(np.float32)
    w[1:] = 0.0
    for _ in range(8):
        out = response(w, rng)
        assert out.shape == w.shape and np.isfinite(out).all()
    noisy = coloured_noise(w, rng)
    assert (noisy[1:] == 0).all() and not np.allclose(noisy[0], w[0])  # dead rows stay dead


def test_second_region_labels_are_as_wide_as_the_pick_error(no_shared: Path) -> None:
    """Records of a second region carry automatic picks with errors: the P label of a pick
    known to 0.5 s is wider than one known to 0.05 s (the recipe's 0.2 s at least)."""
    from geosentry.training.data.phasenet import PhaseNetEvent

    data = prepare_seismic(0, limit=12)
    rec = np.zeros((3, 9001), np.float32)
    sharp = PhaseNetEvent("a", "Z7", "A", rec, 3000, 3150)
    vague = PhaseNetEvent("b", "Z7", "B", rec, 3000, -1)  # no usable S pick
    sharp.pick_error_s = {"P": 0.05, "S": 0.05}  # type: ignore[attr-defined]
    vague.pick_error_s = {"P": 0.5, "S": None}  # type: ignore[attr-defined]
    task = NetworkPickerTask(data, extra=[sharp, vague], window=400, batch=4, channels=(4, 8, 8))
    ys, yv = task._labels(sharp, 2800), task._labels(vague, 2800)
    assert (ys[0] > 0.5).sum() < (yv[0] > 0.5).sum()
    assert ys[0].argmax() == yv[0].argmax() == 200
    assert ys[1].max() > 0.9 and yv[1].max() == 0.0
    assert np.allclose(ys.sum(axis=0), 1.0, atol=1e-5)


def test_continuous_recipe_draws_more_crops_without_the_pick(no_shared: Path) -> None:
    """``--recipe continuous``: half the crops anywhere in the record, so more training windows
    hold no P at all (noise, coda) than with the shipped recipe's 15 %."""
    import pytest

    from geosentry.training.train.tasks import PICKER_RECIPES, picker_task

    data = prepare_seismic(0, limit=12)
    shares = {}
    for recipe in ("baseline", "continuous"):
        task = picker_task(recipe, data, window=400, batch=256, channels=(4, 8, 8))
        _, y = task.sample(np.random.default_rng(0))
        shares[recipe] = float(np.mean(y[:, 0].max(axis=1) < 0.5))
    assert shares["continuous"] > shares["baseline"] + 0.15, shares
    assert set(PICKER_RECIPES) >= {"baseline", "network", "network-iceland", "continuous"}
    from geosentry.training.evaluate.lono import RECIPES

    assert set(RECIPES) == set(PICKER_RECIPES)  # each recipe's row label in the LONO report
    with pytest.raises(ValueError, match="unknown picker recipe"):
        picker_task("nonsense", data)


def test_early_warning_recipe_ends_crops_just_after_an_arrival(no_shared: Path) -> None:
    """``--recipe early-warning``: a third of the crops end 0.5-3 s after the P or the S (what
    a picker at ``lookahead_s = 1`` sees: an arrival with nothing after it), against few with
    the shipped recipe."""
    from geosentry.training.train.picker import ARRIVAL_END_S
    from geosentry.training.train.tasks import picker_task

    data = prepare_seismic(0, limit=12)
    lo, hi = (round(v * 100) for v in ARRIVAL_END_S)
    shares = {}
    for recipe in ("baseline", "early-warning"):
        task = picker_task(recipe, data, batch=256, channels=(4, 8, 8))  # 30.01 s windows
        _, y = task.sample(np.random.default_rng(0))
        last = [max((int(row[k].argmax()) for k in (0, 1) if row[k].max() > 0.9), default=-1)
                for row in y]  # the window's last labelled arrival (peak), -1: none
        shares[recipe] = float(np.mean([lo <= 3001 - i <= hi for i in last]))
    assert shares["early-warning"] > shares["baseline"] + 0.2, shares
