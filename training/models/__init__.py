"""TorchScript-compatible model definitions (see each module for its input/output contract).

Model modules deliberately omit ``from __future__ import annotations``: TorchScript needs real
(not string) class-attribute annotations.
"""

from __future__ import annotations

from geosentry.training.models.autoencoder import ConvAutoencoder
from geosentry.training.models.cnn import PhasePicker
from geosentry.training.models.gan import Discriminator, Generator
from geosentry.training.models.rnn import EventDetector

__all__ = ["ConvAutoencoder", "Discriminator", "EventDetector", "Generator", "PhasePicker"]
