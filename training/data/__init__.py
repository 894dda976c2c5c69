"""Data readers (PhaseNet npz, IAGA-2002, SeisBench), window/label making and augmentation."""

from __future__ import annotations

from training.data.augment import Augmenter
from training.data.iaga import IagaRecord, read_iaga2002
from training.data.phasenet import PhaseNetEvent, load_events, load_phasenet, station_split
from training.data.windows import event_mask, normalise, pick_labels

__all__ = ["Augmenter", "IagaRecord", "PhaseNetEvent", "event_mask", "load_events",
           "load_phasenet", "normalise", "pick_labels", "read_iaga2002", "station_split"]
