"""Bytes -> ``Record``. miniSEED 2 and 3 via pymseed (libmseed)."""

from geosentry.stream.decode.mseed import decode_payload, split_records

__all__ = ["decode_payload", "split_records"]
