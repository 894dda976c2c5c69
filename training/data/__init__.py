"""Data readers (PhaseNet npz + waveform.csv, miniSEED + QuakeML/CSV picks, SeisBench
metadata.csv + waveforms.hdf5, IAGA-2002 via the service's decoder), window/label making and
augmentation."""

from __future__ import annotations

from geosentry.training.data.augment import Augmenter
from geosentry.training.data.iaga import IagaRecord, read_iaga2002
from geosentry.training.data.mseed import mseed_events, read_picks
from geosentry.training.data.phasenet import PhaseNetEvent, load_events, load_phasenet, station_split
from geosentry.training.data.windows import event_mask, normalise, pick_labels

__all__ = ["Augmenter", "IagaRecord", "PhaseNetEvent", "event_mask", "load_events",
           "load_phasenet", "mseed_events", "normalise", "pick_labels", "read_iaga2002", "read_picks", "station_split"]
