"""TorchScript-compatible model definitions (see each module for its input/output contract).

Model modules deliberately omit ``from __future__ import annotations``: TorchScript needs real
(not string) class-attribute annotations.
"""

from __future__ import annotations

from training.models.autoencoder import ConvAutoencoder
from training.models.cnn import PhasePicker
from training.models.gan import Discriminator, Generator
from training.models.rnn import EventDetector

__all__ = ["ConvAutoencoder", "Discriminator", "EventDetector", "Generator", "PhasePicker"]
