"""geosentry streaming detection service.

Data flows one way, one record type per boundary::

    sources -> decode -> buffer/windows -> inference -> alerts -> sinks
    (RawRecord)  (Record)    (Window)        (Alert)
"""

from geosentry import __version__

__all__ = ["__version__"]
