"""The model contract: the one JSON document that ``training`` writes and ``stream`` reads.

A contract states everything the service needs to feed a model and read its output:

>>> c = ModelContract.from_dict({
...     "contract": "geosentry.model.v1", "name": "tiny", "version": "1", "kind": "picker",
...     "format": "torchscript", "file": "tiny.pt", "sha256": "0" * 64,
...     "sampling_rate_hz": 100.0, "components": ["Z", "N", "E"], "window_samples": 400,
...     "stride_samples": 200, "labels": ["P", "S", "N"], "thresholds": {"P": 0.5, "S": 0.5}})
>>> c.window_s, c.stride_s
(4.0, 2.0)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from geosentry.stream.errors import ContractError
from geosentry.stream.inference.pickrule import PICK_RULES, STACKINGS, PickRule, Stacking
from geosentry.stream.inference.refine import PickRefinement
from geosentry.stream.inference.rules import KINDS, NORMALISATIONS

CONTRACT_SCHEMA = "geosentry.model.v1"
FORMATS = ("torchscript",)
PRECISIONS = ("bf16",)  # float32 is always valid; these need validation on held-out data


@dataclass(frozen=True)
class Normalisation:
    """How a window is normalised before the model sees it (per channel, after demeaning)."""

    method: str = "std"
    demean: bool = True
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.method not in NORMALISATIONS:
            raise ContractError(f"normalisation.method {self.method!r} not in {NORMALISATIONS}")


@dataclass(frozen=True)
class ModelContract:
    """Input/output contract of an exported model (see module docstring)."""

    name: str
    version: str
    kind: str
    format: str
    file: str
    sha256: str
    sampling_rate_hz: float
    components: tuple[str, ...]
    window_samples: int
    stride_samples: int
    labels: tuple[str, ...]
    thresholds: dict[str, float]
    normalisation: Normalisation = field(default_factory=Normalisation)
    output_step_samples: int = 1
    domain: str = "seismic"
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    # reduced precisions validated on held-out data (``geosentry evaluate precision``): name ->
    # evidence, with ``tolerance`` (largest probe-batch output difference accepted at load)
    precisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # picker only: the TorchScript module also exports ``forward_range(x, start, stop)``, equal
    # to ``forward(x)[:, :, start:stop]`` (checked at export and again at load), so the service
    # decodes only the stretch of each window it scores
    forward_range: bool = False
    # picker only: how probabilities become picks (``stream/inference/pickrule.py``); absent in
    # older contracts, which get ``peaks``; ``geosentry models import seisbench`` writes
    # ``seisbench`` (SeisBench's own trigger rule)
    pick_rule: PickRule = PickRule.PEAKS
    # picker only: how overlapping windows' outputs combine (``none``: each sample from the
    # window owning it; ``avg``: SeisBench's mean over every window covering it)
    stacking: Stacking = Stacking.NONE
    # where the weights come from (optional; older contracts have none): ``source``
    # (``geosentry`` trained here, ``seisbench`` imported, ``fine-tuned``), ``trained_on`` (what
    # data), and for imports and fine-tunes the origin (class, weights file sha256, library
    # version, init model). Read by ``geosentry models list/show``, never by the service's checks.
    provenance: dict[str, Any] = field(default_factory=dict)
    # picker only: picks moved to the onset the waveform shows (``stream/inference/refine.py``);
    # absent (None): the model's picks as they are (imported SeisBench models, older contracts)
    refine: PickRefinement | None = None
    contract: str = CONTRACT_SCHEMA

    @property
    def window_s(self) -> float:
        return self.window_samples / self.sampling_rate_hz

    @property
    def stride_s(self) -> float:
        return self.stride_samples / self.sampling_rate_hz

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelContract:
        """Validate ``raw`` and build a contract; every problem names the key."""
        if raw.get("contract") != CONTRACT_SCHEMA:
            raise ContractError(f"contract: expected {CONTRACT_SCHEMA!r}, got {raw.get('contract')!r}")
        required = ("name", "version", "kind", "format", "file", "sha256", "sampling_rate_hz",
                    "components", "window_samples", "stride_samples", "labels", "thresholds")
        missing = [k for k in required if k not in raw]
        if missing:
            raise ContractError(f"contract is missing keys: {', '.join(missing)}")
        kind, fmt = raw["kind"], raw["format"]
        if kind not in KINDS:
            raise ContractError(f"kind: {kind!r} not in {KINDS}")
        if fmt not in FORMATS:
            raise ContractError(f"format: {fmt!r} not supported by this service (supports {FORMATS})")
        rate = float(raw["sampling_rate_hz"])
        if not 0.0 < rate <= 10_000.0:
            raise ContractError(f"sampling_rate_hz: {rate} outside (0, 10000]")
        comps = tuple(str(c) for c in raw["components"])
        if not comps or len(set(comps)) != len(comps) or any(len(c) != 1 for c in comps):
            raise ContractError(f"components: {comps!r} must be distinct one-letter codes")
        window, stride = int(raw["window_samples"]), int(raw["stride_samples"])
        if window < 2:
            raise ContractError(f"window_samples: {window} < 2")
        if not 0 < stride <= window:
            raise ContractError(f"stride_samples: {stride} not in (0, window_samples={window}]")
        labels = tuple(str(label) for label in raw["labels"])
        if not labels:
            raise ContractError("labels: empty")
        thresholds = {str(k): float(v) for k, v in dict(raw["thresholds"]).items()}
        unknown = set(thresholds) - set(labels) - {"anomaly"}
        if unknown:
            raise ContractError(f"thresholds: keys {sorted(unknown)} are not labels {labels}")
        step = int(raw.get("output_step_samples", 1))
        if step < 1 or window % step:
            raise ContractError(f"output_step_samples: {step} must divide window_samples={window}")
        precisions = dict(raw.get("precisions", {}))
        for key, evidence in precisions.items():
            if key not in PRECISIONS or not isinstance(evidence, dict):
                raise ContractError(f"precisions: {key!r} must be one of {PRECISIONS}, "
                                    "each with a table of its validation")
            tol = evidence.get("tolerance")
            if not isinstance(tol, (int, float)) or not 0 < tol < 1:
                raise ContractError(f"precisions.{key}.tolerance: must be a number in (0, 1), "
                                    f"got {tol!r}")
        forward_range = raw.get("forward_range", False)
        if not isinstance(forward_range, bool):
            raise ContractError(f"forward_range: must be true or false, got {forward_range!r}")
        if forward_range and kind != "picker":
            raise ContractError(f"forward_range: only a picker may export it (kind {kind!r})")
        rule = raw.get("pick_rule", PickRule.PEAKS.value)
        if rule not in PICK_RULES:
            raise ContractError(f"pick_rule: {rule!r} is not one of {', '.join(PICK_RULES)}")
        if kind != "picker" and rule != PickRule.PEAKS:
            raise ContractError(f"pick_rule: only a picker has one (kind {kind!r})")
        stacking = raw.get("stacking", Stacking.NONE.value)
        if stacking not in STACKINGS:
            raise ContractError(f"stacking: {stacking!r} is not one of {', '.join(STACKINGS)}")
        if stacking != Stacking.NONE and rule != PickRule.SEISBENCH:
            raise ContractError(f"stacking: {stacking!r} needs pick_rule 'seisbench' "
                                f"(got {rule!r})")
        provenance = raw.get("provenance", {})
        if not isinstance(provenance, dict):
            raise ContractError(f"provenance: must be a table, got {provenance!r}")
        refine_raw, refine = raw.get("refine"), None
        if refine_raw is not None:
            if kind != "picker":
                raise ContractError(f"refine: only a picker's picks are refined (kind {kind!r})")
            refine = PickRefinement.from_dict(refine_raw, labels, comps)
        sha = str(raw["sha256"])
        if len(sha) != 64:
            raise ContractError("sha256: must be 64 hex digits")
        return cls(
            name=str(raw["name"]), version=str(raw["version"]), kind=kind, format=fmt,
            file=str(raw["file"]), sha256=sha, sampling_rate_hz=rate, components=comps,
            window_samples=window, stride_samples=stride, labels=labels, thresholds=thresholds,
            normalisation=Normalisation(**raw.get("normalisation", {})),
            output_step_samples=step, domain=str(raw.get("domain", "seismic")),
            training=dict(raw.get("training", {})), metrics=dict(raw.get("metrics", {})),
            versions={str(k): str(v) for k, v in dict(raw.get("versions", {})).items()},
            precisions=precisions, forward_range=forward_range, pick_rule=PickRule(rule),
            stacking=Stacking(stacking), provenance=dict(provenance), refine=refine,
        )

    @classmethod
    def load(cls, path: str | Path) -> ModelContract:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ContractError(f"contract file not found: {path}") from exc
        except json.JSONDecodeError as exc:
            raise ContractError(f"{path}: not valid JSON ({exc})") from exc
        try:
            return cls.from_dict(raw)
        except ContractError as exc:
            raise ContractError(f"{path}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["components"] = list(self.components)
        out["labels"] = list(self.labels)
        out["pick_rule"] = self.pick_rule.value
        out["stacking"] = self.stacking.value
        if self.refine is None:
            del out["refine"]  # older readers: a contract without refinement has no key
        else:
            out["refine"] = self.refine.to_dict()
        return out

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def contract_path_for(model_path: str | Path) -> Path:
    """``models/x.pt`` -> ``models/x.json`` (the sidecar travels with the weights)."""
    return Path(model_path).with_suffix(".json")


def load_contract(model_path: str | Path) -> ModelContract:
    """Contract of ``model_path`` (the ``.json`` beside it), validated and checked against the
    model file: it must exist, be the file the contract names and have the contract's hash.
    The one check of an exported model, made by the service at load and by training after
    export (``geosentry.training.export.verify_export``)."""
    model_path = Path(model_path)
    if not model_path.exists():
        raise ContractError(f"model file not found: {model_path}")
    contract = ModelContract.load(contract_path_for(model_path))
    if contract.file != model_path.name:
        raise ContractError(f"{model_path}: contract names file {contract.file!r}")
    actual = sha256_file(model_path)
    if actual != contract.sha256:
        raise ContractError(f"{model_path}: sha256 {actual[:12]}… does not match the contract's "
                            f"{contract.sha256[:12]}… (model and contract are out of step)")
    return contract
