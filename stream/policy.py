"""Restricted stations: what each sink audience may see of an alert (README, "Security").

A policy file (TOML, ``policy_file`` in the config) maps station patterns to a rule per sink
audience (``public`` / ``internal``; a sink declares its own with ``?audience=``):

* ``allow``: the alert as it is;
* ``withhold``: the alert never reaches a sink of that audience;
* ``mask``: network ``XX`` (unless ``keep_network``), station replaced by a keyed pseudonym
  (HMAC-SHA256 of ``NET.STA`` with the policy key: stable, not computable without the key),
  location emptied, coordinates in ``details`` rounded to ``grid_deg`` (0: removed), every other
  waveform-derived detail dropped (only ``KEPT_DETAILS`` stay); the ``id`` is recomputed from
  the masked fields, so it is deterministic and does not leak the station either;
* ``{ action = "delay", delay_s = N }``: embargo, released ``N`` s after the alert's data time.

>>> split_audience("jsonl:/tmp/a.jsonl?audience=public")
('jsonl:/tmp/a.jsonl', <Audience.PUBLIC: 'public'>)
>>> split_audience("kafka://h:1/t?group=g&audience=internal")
('kafka://h:1/t?group=g', <Audience.INTERNAL: 'internal'>)
>>> split_audience("jsonl:-")
('jsonl:-', None)
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import hmac
import os
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from geosentry.stream.errors import ConfigError
from geosentry.stream.records import NS_PER_S, Alert
from geosentry.stream.secrets import Secret, read_secret_file


class Audience(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"


class Action(StrEnum):
    ALLOW = "allow"
    DELAY = "delay"
    MASK = "mask"
    WITHHOLD = "withhold"


#: how restrictive an action is: a network detection takes its members' most restrictive
_RANK = {Action.ALLOW: 0, Action.DELAY: 1, Action.MASK: 2, Action.WITHHOLD: 3}
#: details a masked alert keeps (names, not measurements); coordinates are rounded or removed
KEPT_DETAILS = frozenset({"detector", "event", "scope", "method"})
COORDINATE_DETAILS = frozenset({"latitude", "longitude", "lat", "lon", "latitude_deg",
                                "longitude_deg"})
MASKED_NETWORK = "XX"  # FDSN: reserved, never a real network
MIN_KEY_BYTES = 16
#: the safe defaults for stations no rule names: internal sinks see them, public ones do not
DEFAULTS = {Audience.INTERNAL: "allow", Audience.PUBLIC: "withhold"}


@dataclass(frozen=True)
class Rule:
    action: Action
    delay_s: float = 0.0

    def __str__(self) -> str:
        return f"delay {self.delay_s:g} s" if self.action is Action.DELAY else self.action.value


@dataclass(frozen=True)
class StationRule:
    patterns: tuple[str, ...]  # fnmatch on NET.STA (one dot) or NET.STA.LOC (two dots)
    public: Rule | None
    internal: Rule | None

    def rule(self, audience: Audience) -> Rule | None:
        return self.public if audience is Audience.PUBLIC else self.internal


@dataclass(frozen=True)
class MaskSettings:
    key: Secret = dataclasses.field(repr=False)
    grid_deg: float = 0.0  # coordinates rounded to this grid; 0: removed
    keep_network: bool = False


@dataclass(frozen=True)
class Policy:
    path: str
    stations: tuple[StationRule, ...]
    defaults: tuple[tuple[Audience, Rule], ...]
    mask: MaskSettings | None
    max_held: int = 10_000  # embargoed alerts held per sink; full: input waits

    def default(self, audience: Audience) -> Rule:
        return dict(self.defaults)[audience]

    def rule_for(self, audience: Audience, network: str, station: str, location: str) -> Rule:
        """The first station rule (file order) that matches and has a rule for ``audience``,
        else the audience's default."""
        net_sta, site = f"{network}.{station}", f"{network}.{station}.{location}"
        for sr in self.stations:
            rule = sr.rule(audience)
            if rule is not None and any(fnmatch.fnmatchcase(
                    site if p.count(".") == 2 else net_sta, p) for p in sr.patterns):
                return rule
        return self.default(audience)

    def restricts(self, audience: Audience) -> bool:
        """Whether any station may be withheld, masked or delayed for ``audience``."""
        rules = [self.default(audience), *(r for s in self.stations if (r := s.rule(audience)))]
        return any(r.action is not Action.ALLOW for r in rules)

    def member_rule(self, audience: Audience, network: str, station: str) -> Rule:
        """A station named in a network detection (its location unknown): the most
        restrictive of every rule whose ``NET.STA`` part matches, else the default."""
        net_sta, best = f"{network}.{station}", None
        for sr in self.stations:
            rule = sr.rule(audience)
            if rule is None or not any(fnmatch.fnmatchcase(net_sta, ".".join(p.split(".")[:2]))
                                       for p in sr.patterns):
                continue
            if best is None or (_RANK[rule.action], rule.delay_s) > (_RANK[best.action],
                                                                     best.delay_s):
                best = rule
        return best or self.default(audience)


@dataclass(frozen=True)
class Decision:
    """What a sink of one audience gets: ``alert`` (None: withheld), held until ``release_ns``
    (wall clock; 0: at once). ``action`` is what the policy did, for the metric."""

    action: Action
    alert: Alert | None
    release_ns: int = 0


def split_audience(uri: str) -> tuple[str, Audience | None]:
    """A sink URI without its ``audience=`` query parameter, and that audience."""
    base, sep, query = uri.rpartition("?")
    if not sep:
        return uri, None
    params = query.split("&")
    found = [p for p in params if p.startswith("audience=")]
    if not found:
        return uri, None
    value = found[-1].removeprefix("audience=")
    try:
        audience = Audience(value)
    except ValueError:
        raise ConfigError("sinks", f"{uri!r}: audience must be public or internal, "
                          f"got {value!r}") from None
    rest = "&".join(p for p in params if not p.startswith("audience="))
    return (f"{base}?{rest}" if rest else base), audience


def pseudonym(key: Secret, network: str, station: str) -> str:
    """Stable keyed pseudonym of ``NET.STA``: 10 lowercase hex digits (never a SEED code)."""
    return hmac.new(key.reveal().encode(), f"station|{network}.{station}".encode(),
                    hashlib.sha256).hexdigest()[:10]


def apply_policy(policy: Policy, audience: Audience, alert: Alert) -> Decision:
    """What ``policy`` lets a sink of ``audience`` have of ``alert`` (never changes ``alert``)."""
    if alert.station == "*" and "stations" in alert.details:  # a network detection
        return _network(policy, audience, alert)
    if alert.station == "*":  # service-wide health, a located event: the audience's default
        rule = policy.default(audience)
        if rule.action is Action.MASK:
            return Decision(Action.MASK, _copy(alert, details=_kept_details(policy, alert)))
        if rule.action is not Action.WITHHOLD and "pick_ids" in alert.details and \
                policy.restricts(audience):  # ids of picks: unkeyed hashes of station names
            alert = _copy(alert, details={**alert.details, "policy": Action.MASK.value,
                                          "pick_ids": _pick_ids(policy, alert)})
            if rule.action is Action.ALLOW:
                return Decision(Action.MASK, alert)
    else:
        rule = policy.rule_for(audience, alert.network, alert.station, alert.location)
    if rule.action is Action.WITHHOLD:
        return Decision(Action.WITHHOLD, None)
    if rule.action is Action.MASK:
        return Decision(Action.MASK, _masked(policy, alert))
    if rule.action is Action.DELAY:
        return Decision(Action.DELAY, _copy(alert), _release_ns(alert, rule.delay_s))
    return Decision(Action.ALLOW, alert)


def _pick_ids(policy: Policy, alert: Alert) -> list[str]:
    """The ids of an event's picks, keyed (HMAC) when there is a key, else dropped: a pick id
    is an unkeyed hash of its station's name and time, which could be matched against guesses."""
    if policy.mask is None:
        return []
    key = policy.mask.key.reveal().encode()
    return [hmac.new(key, f"pick|{p}".encode(), hashlib.sha256).hexdigest()[:32]
            for p in alert.details.get("pick_ids", [])]


def _release_ns(alert: Alert, delay_s: float) -> int:
    return alert.time_ns + int(round(delay_s * NS_PER_S))


def _copy(alert: Alert, **changes: Any) -> Alert:
    # emitted_ns=0: stamped by the sink that delivers this copy (at release, for an embargo)
    return dataclasses.replace(alert, emitted_ns=0, details=dict(changes.pop("details", alert.details)),
                               **changes)


def _kept_details(policy: Policy, alert: Alert) -> dict[str, Any]:
    grid = policy.mask.grid_deg if policy.mask else 0.0
    out: dict[str, Any] = {k: v for k, v in alert.details.items() if k in KEPT_DETAILS}
    for k in COORDINATE_DETAILS & alert.details.keys():
        v = alert.details[k]
        if grid > 0 and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = round(round(float(v) / grid) * grid, 6)
    out["policy"] = Action.MASK.value
    return out


def _masked(policy: Policy, alert: Alert) -> Alert:
    assert policy.mask is not None  # load_policy requires [mask] when a rule masks
    m = policy.mask
    return _copy(alert, network=alert.network if m.keep_network else MASKED_NETWORK,
                 station=pseudonym(m.key, alert.network, alert.station), location="",
                 details=_kept_details(policy, alert))


def _network(policy: Policy, audience: Audience, alert: Alert) -> Decision:
    members = [str(s) for s in alert.details.get("stations", [])]
    rules = {s: policy.member_rule(audience, alert.network, s) for s in members}
    kept = [s for s in members if rules[s].action is not Action.WITHHOLD]
    if not kept or len(kept) < alert.threshold:  # not a detection without the withheld ones
        return Decision(Action.WITHHOLD, None)
    masked = {s for s in kept if rules[s].action is Action.MASK}
    delay_s = max((rules[s].delay_s for s in kept if rules[s].action is Action.DELAY), default=0)
    release_ns = _release_ns(alert, delay_s) if delay_s else 0
    if len(kept) == len(members) and not masked:
        return Decision(Action.DELAY, _copy(alert), release_ns) if delay_s else \
            Decision(Action.ALLOW, alert)
    m = policy.mask
    stations = sorted(pseudonym(m.key, alert.network, s) if m and s in masked else s
                      for s in kept)
    network = alert.network
    if m and masked and len(masked) == len(kept) and not m.keep_network:
        network = MASKED_NETWORK
    details = {**alert.details, "stations": stations, "policy": Action.MASK.value}
    return Decision(Action.MASK, _copy(alert, network=network, score=float(len(kept)),
                                       details=details), release_ns)


# ---- loading ------------------------------------------------------------------------------
def _rule(key: str, value: Any) -> Rule:
    if isinstance(value, str):
        if value == Action.DELAY:
            raise ConfigError(key, 'a delay needs its length: { action = "delay", delay_s = N }')
        try:
            return Rule(Action(value))
        except ValueError:
            raise ConfigError(key, f"must be one of allow, mask, withhold or "
                                   f'{{ action = "delay", delay_s = N }}, got {value!r}') from None
    if isinstance(value, dict) and value.get("action") == Action.DELAY and set(value) <= {
            "action", "delay_s"}:
        delay = value.get("delay_s")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay <= 0:
            raise ConfigError(f"{key}.delay_s", f"must be a number of seconds > 0, got {delay!r}")
        return Rule(Action.DELAY, float(delay))
    raise ConfigError(key, f'must be allow, mask, withhold or {{ action = "delay", delay_s = N }}'
                           f", got {value!r}")


def _patterns(key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ConfigError(key, f"must be a pattern or a list of patterns, got {value!r}")
    for p in items:
        if not isinstance(p, str) or p.count(".") not in (1, 2) or not all(p.split(".")[:2]):
            raise ConfigError(key, f"{p!r}: must be NET.STA or NET.STA.LOC (fnmatch patterns "
                                   "such as 'XX.*' or 'BW.UH?.00')")
    return tuple(items)


def _mask(key: str, raw: dict[str, Any], base: Path) -> MaskSettings:
    unknown = set(raw) - {"key_file", "key_env", "grid_deg", "keep_network"}
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}", "unknown key (known: grid_deg, "
                                                        "keep_network, key_env, key_file)")
    if ("key_file" in raw) == ("key_env" in raw):
        raise ConfigError(key, "give exactly one of key_file (a file holding the HMAC key) or "
                               "key_env (an environment variable holding it)")
    if "key_file" in raw:
        secret = read_secret_file(base / str(raw["key_file"]), "policy key file",
                                  f"{key}.key_file")
    else:
        value = os.environ.get(str(raw["key_env"]), "").strip()
        if not value:
            raise ConfigError(f"{key}.key_env", f"environment variable {raw['key_env']} is "
                                                "unset or empty")
        secret = Secret(value)
    if len(secret.reveal().encode()) < MIN_KEY_BYTES:
        raise ConfigError(key, f"the key must be at least {MIN_KEY_BYTES} bytes "
                               "(e.g. openssl rand -hex 32)")
    grid = raw.get("grid_deg", 0.0)
    if isinstance(grid, bool) or not isinstance(grid, (int, float)) or not 0 <= grid <= 90:
        raise ConfigError(f"{key}.grid_deg", f"must be in [0, 90] degrees, got {grid!r}")
    keep = raw.get("keep_network", False)
    if not isinstance(keep, bool):
        raise ConfigError(f"{key}.keep_network", f"must be true or false, got {keep!r}")
    return MaskSettings(secret, float(grid), keep)


def load_policy(path: str | Path) -> Policy:
    """Read and check a policy file; every error names ``policy_file`` and the key in it."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except OSError as exc:
        raise ConfigError("policy_file", f"cannot read {p} ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("policy_file", f"{p} is not valid TOML: {exc}") from exc
    k = f"policy_file {p}: "
    for top in raw:
        if top not in ("defaults", "mask", "embargo", "stations"):
            raise ConfigError(k + top, "unknown key (known: defaults, embargo, mask, stations)")
    defaults_raw = {**DEFAULTS, **raw.get("defaults", {})}
    for name in defaults_raw:
        if name not in set(Audience):
            raise ConfigError(f"{k}defaults.{name}", "unknown audience (public, internal)")
    defaults = tuple((a, _rule(f"{k}defaults.{a.value}", defaults_raw[a.value])) for a in Audience)
    stations = []
    for i, sr in enumerate(raw.get("stations", [])):
        where = f"{k}stations[{i}]"
        if not isinstance(sr, dict) or "match" not in sr:
            raise ConfigError(where, "each [[stations]] needs match = 'NET.STA' (or a list)")
        for extra in set(sr) - {"match", "public", "internal"}:
            raise ConfigError(f"{where}.{extra}", "unknown key (known: internal, match, public)")
        stations.append(StationRule(
            _patterns(f"{where}.match", sr["match"]),
            *(_rule(f"{where}.{a}", sr[a]) if a in sr else None for a in ("public", "internal"))))
    rules = [r for _, r in defaults] + [r for s in stations for r in (s.public, s.internal) if r]
    mask = _mask(f"{k}mask", raw["mask"], p.parent) if "mask" in raw else None
    if mask is None and any(r.action is Action.MASK for r in rules):
        raise ConfigError(f"{k}mask", "a rule masks stations: give [mask] with key_file or "
                                      "key_env (the pseudonyms' HMAC key)")
    embargo = raw.get("embargo", {})
    max_held = embargo.get("max_held", 10_000)
    if isinstance(max_held, bool) or not isinstance(max_held, int) or max_held < 1:
        raise ConfigError(f"{k}embargo.max_held", f"must be an integer >= 1, got {max_held!r}")
    return Policy(str(p), tuple(stations), defaults, mask, max_held)


def check_audiences(sinks: tuple[str, ...], policy: Policy | None) -> None:
    """With a policy every sink declares its audience; without one, none does."""
    for i, uri in enumerate(sinks):
        _, audience = split_audience(uri)
        if policy is not None and audience is None:
            raise ConfigError(f"sinks[{i}]", f"{uri!r}: with a policy_file every sink declares "
                                             "its audience (?audience=public or internal)")
        if policy is None and audience is not None:
            raise ConfigError(f"sinks[{i}]", f"{uri!r}: an audience needs a policy_file "
                                             "(the rules per audience)")
