"""Events from picks: station inventory, 1-D velocity model and travel times, association,
location, local magnitude, QuakeML, the incremental ``EventStage`` and the evaluation.

Offline: ``geosentry associate --picks FILE --inventory FILE [--velocity-model FILE] --out X.xml``.
"""
