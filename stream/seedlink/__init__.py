"""SeedLink for geosentry: a replay server (``server``) and the wire codec it uses (``protocol``).

The client side is ``geosentry.stream.sources.seedlink`` (built on the ``seedlink-client`` package); see
``README.md`` in this directory for the protocol notes and the client evaluation.
"""
