"""Task registry: ``build_task(name, seed, quick)`` for the CLI."""

from __future__ import annotations

from typing import Any


#: picker recipes (``--recipe``): what each changes against the shipped recipe's training
PICKER_RECIPES = {
    "baseline": "the shipped recipe",
    "network": "augmentation imitating other networks (train.picker_network)",
    "network-iceland": "network, plus the Iceland swarm as a second region",
    "continuous": "half the crops anywhere in the record (noise, coda) instead of 15 %: what a "
                  "continuous stream shows between events",
    "early-warning": "a third of the crops end 0.5-3 s after the P or the S (an arrival with "
                     "nothing after it: a detector at lookahead_s = 1 for early warning)",
}
CONTINUOUS_ANYWHERE_SHARE = 0.5
EARLY_WARNING_ARRIVAL_END_SHARE = 1 / 3


def recipes_help(lead: str) -> str:
    """``--recipe``'s help text: ``lead`` and each recipe's description, ``%`` escaped for
    argparse (an unescaped "15 %" made ``--help`` raise)."""
    return (lead + "; ".join(f"{k}: {v}" for k, v in PICKER_RECIPES.items())).replace("%", "%%")


def picker_task(recipe: str, data: Any, **kw: Any) -> Any:
    """The picker training task of ``recipe`` (:data:`PICKER_RECIPES`) on ``data``."""
    from geosentry.training.train.picker import PickerTask

    if recipe == "baseline":
        return PickerTask(data, **kw)
    if recipe == "continuous":
        return PickerTask(data, anywhere_share=CONTINUOUS_ANYWHERE_SHARE, **kw)
    if recipe == "early-warning":
        return PickerTask(data, arrival_end_share=EARLY_WARNING_ARRIVAL_END_SHARE, **kw)
    if recipe in ("network", "network-iceland"):
        from geosentry.training.data.iceland import load_iceland
        from geosentry.training.train.picker_network import NetworkPickerTask

        extra = load_iceland() if recipe == "network-iceland" else []
        return NetworkPickerTask(data, extra=extra, **kw)
    raise ValueError(f"unknown picker recipe {recipe!r} (one of {sorted(PICKER_RECIPES)})")


def build_task(name: str, seed: int = 0, quick: bool = False, recipe: str = "baseline") -> Any:
    """Build a training task; ``quick`` shrinks model and data for smoke tests; ``recipe``
    (picker only): ``network`` adds the augmentation imitating other networks,
    ``network-iceland`` also the Iceland swarm as a second region (``train.picker_network``).

    Seeds torch first so the initial weights depend only on ``seed``.
    """
    import torch

    torch.manual_seed(seed)
    if name in ("picker", "detector", "anomaly", "gan"):
        from geosentry.training.train.common import prepare_seismic

        data = prepare_seismic(seed, limit=24 if quick else None)
        if name == "picker":
            kw: dict[str, Any] = (dict(window=400, batch=4, channels=(4, 8, 8), eval_per_event=2,
                                       tune_per_event=1) if quick else {})
            return picker_task(recipe, data, **kw)
        if name == "detector":
            from geosentry.training.train.detector import DetectorTask

            return DetectorTask(data, quick=quick)
        if name == "anomaly":
            from geosentry.training.train.anomaly import SeismicAnomalyTask

            return SeismicAnomalyTask(data, quick=quick, seed=seed)
        from geosentry.training.train.gan import GanTask

        return GanTask(data, quick=quick)
    if name == "anomaly-geomag":
        from geosentry.training.train.anomaly import GeomagAnomalyTask

        return GeomagAnomalyTask(seed=seed, quick=quick)
    raise ValueError(f"unknown task {name!r}")
