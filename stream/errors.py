"""One exception hierarchy for the service.

Every error carries ``retriable``: ``True`` when retrying the same operation later may succeed
(broker outage, connection reset), ``False`` when the input or configuration itself is wrong.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class GeosentryError(Exception):
    """Base class of every error geosentry raises on purpose."""

    retriable: bool = False


class ConfigError(GeosentryError):
    """Invalid configuration: names the offending key and why."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"config key {key!r}: {why}")
        self.key = key
        self.why = why


class DecodeReason(StrEnum):
    """Why a record could not be decoded: the fixed vocabulary of the
    ``geosentry_decode_errors_total{reason}`` label (never derived from exception text)."""

    TRUNCATED = "truncated"        # the record ends before its header says it does
    NOT_MSEED = "not_mseed"        # no miniSEED 2/3 record header where one was expected
    BAD_HEADER = "bad_header"      # a header field or blockette chain that cannot be right
    BAD_LENGTH = "bad_length"      # impossible record length
    BAD_RATE = "bad_rate"          # sample rate zero, negative, non-finite or out of range
    BAD_TIME = "bad_time"          # start/end time invalid or outside the supported years
    BAD_SID = "bad_sid"            # source id not UTF-8 or not a FDSN/SEED id
    BAD_SAMPLES = "bad_samples"    # sample count disagrees with the data (or is impossible)
    BAD_ENCODING = "bad_encoding"  # unknown data encoding or corrupt compressed frames
    BAD_CRC = "bad_crc"            # miniSEED 3 CRC mismatch
    NON_FINITE = "non_finite"      # NaN/inf float samples
    UNSUPPORTED = "unsupported"    # valid, but a sample type the service does not use (text)
    NO_DATA = "no_data"            # the payload holds no data samples at all
    CORRUPT = "corrupt"            # anything else libmseed refused


class RejectReason(StrEnum):
    """Why a decoded record was not used: the fixed vocabulary of the
    ``geosentry_records_rejected_total{reason}`` label (buffer events map onto it by kind,
    ``geosentry.stream.buffer.channel.REJECTIONS``, never by their text)."""

    UNKNOWN_CHANNEL = "unknown_channel"  # no detector uses the channel
    RATE = "rate"                        # the channel's sample rate changed (reset_rate)
    DUPLICATE = "duplicate"              # samples already held
    OVERLAP = "overlap"                  # partly held (the new tail was used)
    FUTURE = "future"                    # dated in the future (clock policy)
    RATE_TOO_LOW = "rate_too_low"        # a detector needs a higher rate
    RATE_UNSUPPORTED = "rate_unsupported"  # a detector cannot run at this rate


class DecodeError(GeosentryError):
    """A record could not be decoded (corrupt, truncated, impossible header values).

    ``reason`` is one of ``DecodeReason`` (metrics label); ``sid`` the SEED id when the header
    was readable."""

    def __init__(self, message: str, sid: str | None = None,
                 reason: DecodeReason = DecodeReason.CORRUPT) -> None:
        super().__init__(f"{sid}: {message}" if sid else message)
        self.sid = sid
        self.reason = DecodeReason(reason)


class ContractError(GeosentryError):
    """A model file and its JSON contract disagree, or the contract is invalid."""


class SourceError(GeosentryError):
    """A source failed (file missing, broker unreachable)."""


class SinkError(GeosentryError):
    """A sink could not take alerts. ``retriable``: the same alerts may be sent again later
    (broker away, disk full); otherwise the sink cannot work at all (no such folder)."""

    def __init__(self, message: str, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable
        #: the alerts of the failed ``send`` that were not delivered (None: all of them)
        self.undelivered: list[Any] | None = None


class NotStartedError(GeosentryError):
    """A source, sink or server was used before ``start()`` (or after ``stop()``)."""
