"""geosentry streaming detection service.

Data flows one way, one record type per boundary::

    sources -> decode -> buffer/windows -> inference -> alerts -> sinks
    (RawRecord)  (Record)    (Window)        (Alert)
"""

__version__ = "0.1.0"
