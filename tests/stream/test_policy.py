"""Restricted stations: allow / withhold / mask / delay per sink audience, on real alerts from
the pipeline run over ObsPy's bundled BW.UH1-UH4 recordings."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import pytest

from geosentry.stream.config import load_config, load_config_dict
from geosentry.stream.demo import demo_config_dict
from geosentry.stream.detectors.factory import build_detectors
from geosentry.stream.errors import ConfigError
from geosentry.stream.metrics import Metrics
from geosentry.stream.pipeline import Pipeline
from geosentry.stream.policy import (MASKED_NETWORK, Action, Audience, apply_policy,
                                     load_policy, pseudonym)
from geosentry.stream.records import NS_PER_S, Alert, RawRecord, SourceRef, now_ns
from geosentry.stream.sinks.fanout import Fanout
from geosentry.stream.sinks.policy import PolicySink, open_sinks
from geosentry.stream.testing import MemorySink, MemorySource, interleaved, run_pipeline

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "stream" / "schemas"
                     / "alert.v1.json").read_text())
KEY = "0123456789abcdef-test-key"
PUB, INT = Audience.PUBLIC, Audience.INTERNAL


@pytest.fixture(scope="module")
def real_alerts() -> list[Alert]:
    sink, summary, _ = asyncio.run(run_pipeline(interleaved()))
    assert summary.exit_code == 0 and len(sink.alerts) > 50
    return sink.alerts


def write_policy(tmp_path: Path, body: str, key: str = KEY, mode: int = 0o600) -> Path:
    key_file = tmp_path / "policy.key"
    key_file.write_text(key + "\n")
    key_file.chmod(mode)
    path = tmp_path / "policy.toml"
    path.write_text(f'[mask]\nkey_file = "policy.key"\n{body}')
    return path


RULES = """
[[stations]]
match = "BW.UH1"
public = "mask"
[[stations]]
match = ["BW.UH2"]
public = "withhold"
internal = { action = "delay", delay_s = 60 }
[[stations]]
match = ["BW.UH3", "BW.UH4"]
public = "allow"
"""


def of(alerts: list[Alert], station: str) -> list[Alert]:
    return [a for a in alerts if a.station == station]


def test_allow_passes_the_alert_unchanged(tmp_path: Path, real_alerts: list[Alert]) -> None:
    policy = load_policy(write_policy(tmp_path, RULES))
    for a in of(real_alerts, "UH3") + of(real_alerts, "UH1"):  # UH1: internal default allow
        d = apply_policy(policy, INT if a.station == "UH1" else PUB, a)
        assert d.action is Action.ALLOW and d.alert is a and d.release_ns == 0


def test_withhold_and_the_safe_public_default(tmp_path: Path, real_alerts: list[Alert]) -> None:
    policy = load_policy(write_policy(tmp_path, RULES))
    assert [apply_policy(policy, PUB, a).alert for a in of(real_alerts, "UH2")] == \
        [None] * len(of(real_alerts, "UH2"))
    # no rule names it: public sinks do not get it, internal ones do
    other = dataclasses.replace(of(real_alerts, "UH3")[0], network="GR", station="FUR")
    assert apply_policy(policy, PUB, other).action is Action.WITHHOLD
    assert apply_policy(policy, INT, other).alert is other
    # the default is configurable; service-wide health (station "*") follows the defaults
    opened = load_policy(write_policy(tmp_path, RULES + '[defaults]\npublic = "allow"\n'))
    assert apply_policy(opened, PUB, other).alert is other


def test_mask_pseudonymises_station_id_and_details(tmp_path: Path,
                                                   real_alerts: list[Alert]) -> None:
    policy = load_policy(write_policy(tmp_path, RULES))
    uh1 = of(real_alerts, "UH1")
    assert {a.kind.value for a in uh1} >= {"pick", "detection", "anomaly", "health"}
    for a in uh1:
        d = apply_policy(policy, PUB, a)
        m = d.alert
        assert d.action is Action.MASK and m is not None and d.release_ns == 0
        assert (m.network, m.location) == (MASKED_NETWORK, "")
        assert m.station == pseudonym(policy.mask.key, "BW", "UH1")  # type: ignore[union-attr]
        assert len(m.station) == 10 and m.station != hashlib.sha256(b"BW.UH1").hexdigest()[:10]
        assert set(m.details) <= {"detector", "event", "scope", "method", "policy"}
        assert m.id != a.id and m.id == apply_policy(policy, PUB, a).alert.id  # type: ignore[union-attr]
        doc = json.loads(m.to_json())
        jsonschema.validate(doc, SCHEMA)
        text = m.to_json().decode()
        assert "UH1" not in text and '"BW"' not in text and a.id not in text
        assert (a.network, a.station) == ("BW", "UH1")  # the original is untouched
    # another key, other pseudonyms: they cannot be computed without it
    (tmp_path / "other").mkdir()
    other = load_policy(write_policy(tmp_path / "other", RULES, key="another-key-of-16-bytes"))
    again = apply_policy(other, PUB, uh1[0]).alert
    assert again is not None and again.station != pseudonym(policy.mask.key, "BW", "UH1")  # type: ignore[union-attr]
    assert again.id != apply_policy(policy, PUB, uh1[0]).alert.id  # type: ignore[union-attr]


def test_mask_rounds_or_removes_coordinates(tmp_path: Path, real_alerts: list[Alert]) -> None:
    a = of(real_alerts, "UH1")[0]
    located = dataclasses.replace(a, details={**a.details, "latitude": 48.16291,
                                              "longitude": 11.27527, "snr": 12.5})
    grid = load_policy(write_policy(tmp_path, RULES.replace("[[stations]]", "grid_deg = 0.5\n"
                                                            "[[stations]]", 1)))
    m = apply_policy(grid, PUB, located).alert
    assert m is not None and (m.details["latitude"], m.details["longitude"]) == (48.0, 11.5)
    assert "snr" not in m.details
    gone = apply_policy(load_policy(write_policy(tmp_path, RULES)), PUB, located).alert
    assert gone is not None and not {"latitude", "longitude"} & gone.details.keys()


def test_delay_holds_until_data_time_plus_embargo(tmp_path: Path,
                                                  real_alerts: list[Alert]) -> None:
    policy = load_policy(write_policy(tmp_path, RULES))
    for a in of(real_alerts, "UH2"):
        d = apply_policy(policy, INT, a)
        assert d.action is Action.DELAY and d.alert is not None and d.alert is not a
        assert d.release_ns == a.time_ns + 60 * NS_PER_S
        assert (d.alert.id, d.alert.station, d.alert.details) == (a.id, a.station, a.details)


def test_network_detection_judged_by_its_members(tmp_path: Path,
                                                 real_alerts: list[Alert]) -> None:
    policy = load_policy(write_policy(tmp_path, RULES))
    network = [a for a in real_alerts if a.station == "*"]
    assert network
    key = policy.mask.key  # type: ignore[union-attr]
    for a in network:
        d = apply_policy(policy, PUB, a)
        members = a.details["stations"]
        kept = [s for s in members if s != "UH2"]
        if len(kept) < a.threshold:
            assert d.action is Action.WITHHOLD and d.alert is None
            continue
        m = d.alert
        assert m is not None and m.score == len(kept)
        assert m.details["stations"] == sorted(
            pseudonym(key, "BW", s) if s == "UH1" else s for s in kept)
        assert "UH1" not in m.to_json().decode() and "UH2" not in m.to_json().decode()
        jsonschema.validate(json.loads(m.to_json()), SCHEMA)
    # internal: UH2 delayed, so every network detection with UH2 is delayed as a whole
    for a in network:
        d = apply_policy(policy, INT, a)
        assert d.release_ns == (a.time_ns + 60 * NS_PER_S if "UH2" in a.details["stations"]
                                else 0)


def test_first_rule_wins_and_location_patterns(tmp_path: Path, real_alerts: list[Alert]) -> None:
    a = of(real_alerts, "UH3")[0]
    policy = load_policy(write_policy(tmp_path, """
[[stations]]
match = "BW.UH3.00"
public = "withhold"
[[stations]]
match = "BW.UH?"
public = "mask"
[[stations]]
match = "BW.*"
public = "allow"
"""))
    assert apply_policy(policy, PUB, a).action is Action.MASK  # location "" is not 00
    assert apply_policy(policy, PUB, dataclasses.replace(a, location="00")).action is \
        Action.WITHHOLD


@pytest.mark.parametrize("body, key, why", [
    ('[[stations]]\nmatch = "BW.UH1"\npublic = "hide"\n', "stations[0].public", "one of"),
    ('[[stations]]\nmatch = "BW.UH1"\npublic = "delay"\n', "stations[0].public", "delay_s"),
    ('[[stations]]\nmatch = "BW"\npublic = "allow"\n', "stations[0].match", "NET.STA"),
    ('[[stations]]\nmatch = "BW.UH1"\npublic = { action = "delay", delay_s = -1 }\n',
     "stations[0].public.delay_s", "> 0"),
    ('[defaults]\npublic = "allow"\nguests = "allow"\n', "defaults.guests", "audience"),
    ('[embargo]\nmax_held = 0\n', "embargo.max_held", ">= 1"),
])
def test_policy_errors_name_the_key(tmp_path: Path, body: str, key: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        load_policy(write_policy(tmp_path, body))
    assert info.value.key.endswith(key)


def test_key_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        load_policy(write_policy(tmp_path, "", key="short"))
    no_key = tmp_path / "nokey.toml"
    no_key.write_text('[[stations]]\nmatch = "BW.UH1"\npublic = "mask"\n')
    with pytest.raises(ConfigError, match=r"give \[mask\]"):
        load_policy(no_key)
    env = tmp_path / "env.toml"
    env.write_text('[mask]\nkey_env = "GEOSENTRY_TEST_POLICY_KEY"\n')
    monkeypatch.delenv("GEOSENTRY_TEST_POLICY_KEY", raising=False)
    with pytest.raises(ConfigError, match="unset or empty"):
        load_policy(env)
    monkeypatch.setenv("GEOSENTRY_TEST_POLICY_KEY", KEY)
    policy = load_policy(env)
    assert KEY not in repr(policy) and pseudonym(policy.mask.key, "BW", "UH1") == \
        pseudonym(load_policy(write_policy(tmp_path, "")).mask.key, "BW", "UH1")  # type: ignore[union-attr]


def test_exposed_key_file_warned_once_by_name(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="geosentry.stream.secrets"):
        path = write_policy(tmp_path, "", mode=0o644)
        load_policy(path)
        load_policy(path)
    lines = [r.getMessage() for r in caplog.records if "readable by group/others" in r.message]
    assert len(lines) == 1 and str(tmp_path / "policy.key") in lines[0] and KEY not in lines[0]


def test_sinks_declare_an_audience(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, RULES)
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'policy_file = "{policy}"\nsinks = ["jsonl:-"]\n')
    with pytest.raises(ConfigError, match=r"sinks\[0\].*audience"):
        load_config(cfg)
    cfg.write_text('sinks = ["jsonl:-?audience=public"]\n')
    with pytest.raises(ConfigError, match="needs a policy_file"):
        load_config(cfg)
    cfg.write_text(f'policy_file = "{policy}"\nsinks = ["jsonl:-?audience=outsiders"]\n')
    with pytest.raises(ConfigError, match="public or internal"):
        load_config(cfg)


class Clock:
    def __init__(self, t_ns: int) -> None:
        self.t_ns = t_ns

    def __call__(self) -> int:
        return self.t_ns


async def _until(cond: object, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.01)


def test_embargo_released_bounded_and_commit_waits(tmp_path: Path,
                                                   real_alerts: list[Alert]) -> None:
    policy = load_policy(write_policy(tmp_path, RULES + "[embargo]\nmax_held = 2\n"))
    uh2 = of(real_alerts, "UH2")
    uh3 = of(real_alerts, "UH3")[:2]
    clock = Clock(min(a.time_ns for a in uh2))
    metrics = Metrics()

    async def main() -> None:
        inner = MemorySink()
        sink = PolicySink(inner, INT, policy, metrics, clock=clock, poll_s=0.02)
        fanout = Fanout([sink], metrics)
        ended: list[str] = []
        async with sink:
            await fanout.send(uh3, lambda: ended.append("uh3"))  # not embargoed: ended at once
            assert ended == ["uh3"] and inner.alerts == uh3
            await fanout.send(uh2[:2], lambda: ended.append("uh2"))
            assert sink.held == 2 and ended == ["uh3"] and len(inner.alerts) == 2
            third = asyncio.create_task(sink.send_held(uh2[2:3]))  # hold full: waits
            await asyncio.sleep(0.1)
            assert not third.done()
            clock.t_ns = max(a.time_ns for a in uh2[:2]) + 60 * NS_PER_S  # embargo over
            await _until(lambda: ended == ["uh3", "uh2"])
            assert [a.id for a in inner.alerts[2:4]] == [a.id for a in uh2[:2]]
            (held,) = await asyncio.wait_for(third, 5)
            assert not held.done() and sink.held == 1
        # stopped with one held: never delivered, never reported done (input not committed)
        assert held.cancelled() and len(inner.alerts) == 4
        assert metrics.value("geosentry_policy_alerts_total", sink="memory",
                             audience="internal", action="held_at_stop") == 1
        assert metrics.value("geosentry_policy_alerts_total", sink="memory",
                             audience="internal", action="released") == 2

    asyncio.run(main())


def test_two_audiences_public_output_names_no_restricted_station(
        tmp_path: Path, real_alerts: list[Alert]) -> None:
    """Pipeline -> jsonl (internal) + jsonl (public): nothing in the public file identifies the
    masked UH1 or the withheld UH2 (codes, unkeyed hashes, the internal alert ids)."""
    policy = write_policy(tmp_path, RULES.replace('internal = { action = "delay", delay_s = 60 }',
                                                  ""))
    pub, internal = tmp_path / "public.jsonl", tmp_path / "internal.jsonl"
    raw = demo_config_dict()  # the demo's detectors, as run_pipeline uses them
    raw.update(policy_file=str(policy), sinks=[f"jsonl:{pub}?audience=public",
                                               f"jsonl:{internal}?audience=internal"])
    cfg = load_config_dict(raw)
    metrics = Metrics()
    sinks = open_sinks(cfg, metrics)
    pipeline = Pipeline(cfg, [MemorySource(interleaved())], sinks, build_detectors(cfg), metrics)
    summary = asyncio.run(pipeline.run())
    assert summary.exit_code == 0
    internal_docs = [json.loads(line) for line in internal.read_text().splitlines()]
    public_text = pub.read_text()
    public_docs = [json.loads(line) for line in public_text.splitlines()]
    assert {d["station"] for d in internal_docs} >= {"UH1", "UH2", "UH3", "UH4"}
    masked = pseudonym(load_policy(policy).mask.key, "BW", "UH1")  # type: ignore[union-attr]
    # network detections survive where enough members remain without the withheld UH2
    survive = {"*"} if any(len(set(d["details"]["stations"]) - {"UH2"}) >= d["threshold"]
                           for d in internal_docs if d["station"] == "*") else set()
    assert {d["station"] for d in public_docs} == {"UH3", "UH4", masked} | survive
    restricted_ids = {d["id"] for d in internal_docs if d["station"] in ("UH1", "UH2")}
    for needle in ["UH1", "UH2", hashlib.sha256(b"BW.UH1").hexdigest()[:10],
                   hashlib.sha256(b"BW.UH2").hexdigest()[:10], *restricted_ids]:
        assert needle not in public_text
    for d in public_docs:
        jsonschema.validate(d, SCHEMA)
        if d["station"] == masked:
            assert d["network"] == MASKED_NETWORK and d["details"]["policy"] == "mask"
    assert metrics.value("geosentry_policy_alerts_total", sink="jsonl", audience="public",
                         action="withhold") > 0



class CommittingSource(MemorySource):
    """The demo records with offsets (partition 0), remembering what the pipeline commits."""

    def __init__(self) -> None:
        super().__init__(interleaved(), name="offsets")
        self.committed: dict[int, int] = {}

    async def records(self) -> AsyncIterator[RawRecord]:
        for i, p in enumerate(self.payloads):
            yield RawRecord(p, now_ns(), ref=SourceRef(self.name, 0, i))

    async def commit(self, offsets: dict[int, int]) -> None:
        self.committed.update(offsets)


@pytest.mark.parametrize("embargo", [False, True])
def test_embargoed_alert_keeps_its_input_uncommitted(tmp_path: Path, embargo: bool) -> None:
    """An alert still under embargo when the run ends: not delivered, and the offsets of the
    records it came from are not committed (a restart re-reads them); without it, all are."""
    rule = '{ action = "delay", delay_s = 630720000 }' if embargo else '"allow"'  # 20 years
    policy = write_policy(tmp_path, f'[[stations]]\nmatch = "BW.UH2"\ninternal = {rule}\n')
    raw = demo_config_dict()
    raw.update(policy_file=str(policy), sinks=["memory:?audience=internal"])
    cfg = load_config_dict(raw)
    metrics = Metrics()
    source = CommittingSource()
    sinks = open_sinks(cfg, metrics)
    summary = asyncio.run(Pipeline(cfg, [source], sinks, build_detectors(cfg), metrics).run())
    inner = sinks[0].inner  # type: ignore[attr-defined]
    assert summary.exit_code == 0 and inner.alerts
    held = metrics.value("geosentry_policy_alerts_total", sink="memory", audience="internal",
                         action="held_at_stop")
    if embargo:
        assert held > 0 and not of(inner.alerts, "UH2")
        assert 0 <= source.committed.get(0, 0) < len(source.payloads) - 100, source.committed
    else:
        assert held == 0 and of(inner.alerts, "UH2")
        assert source.committed == {0: len(source.payloads)}


def test_cli_run_with_policy_and_one_line_config_errors(tmp_path: Path) -> None:
    """``geosentry run`` wires the policy into its sinks; a bad policy exits 2 with one line."""
    import subprocess
    import sys

    data = tmp_path / "demo.mseed"
    data.write_bytes(b"".join(interleaved()))
    policy = write_policy(tmp_path, RULES)
    pub, internal = tmp_path / "public.jsonl", tmp_path / "internal.jsonl"
    cfg = tmp_path / "geosentry.toml"
    cfg.write_text(f'policy_file = "{policy}"\n'
                   f'sinks = ["jsonl:{pub}?audience=public", "jsonl:{internal}?audience=internal"]\n')
    out, err = tmp_path / "out", tmp_path / "err"
    cmd = [sys.executable, "-m", "geosentry.stream.cli", "run", "--source", str(data),
           "--config", str(cfg)]
    with out.open("w") as o, err.open("w") as e:
        done = subprocess.run(cmd, stdout=o, stderr=e, timeout=300)
    assert done.returncode == 0, err.read_text()[-2000:]
    public = pub.read_text()
    assert public and "UH1" not in public and "UH2" not in public and "UH3" in public
    assert "UH2" in internal.read_text()
    (tmp_path / "policy.toml").write_text('[[stations]]\nmatch = "BW.UH1"\npublic = "hide"\n')
    with out.open("w") as o, err.open("w") as e:
        done = subprocess.run(cmd, stdout=o, stderr=e, timeout=300)
    lines = err.read_text().strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "stations[0].public" in lines[0], lines


def test_located_event_follows_the_default_and_hides_pick_ids(
        tmp_path: Path, real_alerts: list[Alert]) -> None:
    """An alert for the whole network without a member list (a located event) follows the
    audience's default; the ids of its picks (unkeyed hashes of station and time) are keyed
    wherever the audience has restricted stations."""
    picks = [a.id for a in real_alerts if a.kind.value == "pick"][:4]
    net = next(a for a in real_alerts if a.station == "*")
    event = dataclasses.replace(net, details={"event_id": "e1", "pick_ids": picks,
                                              "origin": {"latitude": 48.1, "longitude": 11.3}})
    policy = load_policy(write_policy(tmp_path, RULES))
    assert apply_policy(policy, PUB, event).action is Action.WITHHOLD  # the safe default
    d = apply_policy(policy, INT, event)  # internal: UH2 is delayed, so pick ids are keyed
    assert d.alert is not None and d.release_ns == 0 and d.alert.details["origin"]["latitude"]
    keyed = d.alert.details["pick_ids"]
    assert len(keyed) == len(picks) and not set(keyed) & set(picks)
    assert keyed == apply_policy(policy, INT, event).alert.details["pick_ids"]  # type: ignore[union-attr]
    assert event.details["pick_ids"] == picks  # the original is untouched
    opened = load_policy(write_policy(tmp_path, '[defaults]\npublic = "allow"\n'))
    assert apply_policy(opened, INT, event).alert is event  # nothing restricted: unchanged


class PartlyAcknowledging(MemorySink):
    """Injected fault a real broker cannot be made to produce on demand: the first send
    acknowledges all but its last alert (a partial Kafka acknowledgement)."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def send(self, alerts: list[Alert]) -> None:
        from geosentry.stream.errors import SinkError

        self.attempts += 1
        if self.attempts == 1:
            await super().send(alerts[:-1])
            err = SinkError("1 alert not acknowledged", retriable=True)
            err.undelivered = alerts[-1:]
            raise err
        await super().send(alerts)


def test_partial_failure_keeps_the_embargo_on_the_commit(tmp_path: Path,
                                                         real_alerts: list[Alert]) -> None:
    """A retried send (only the unacknowledged alert is resent) still reports the held alerts:
    the windows are ended only once the embargo is over."""
    policy = load_policy(write_policy(tmp_path, RULES))
    batch = of(real_alerts, "UH2")[:1] + of(real_alerts, "UH3")[:2]  # one held, two sent
    clock = Clock(batch[0].time_ns)
    metrics = Metrics()

    async def main() -> None:
        inner = PartlyAcknowledging()
        sink = PolicySink(inner, INT, policy, metrics, clock=clock, poll_s=0.02)
        ended: list[bool] = []
        async with sink:
            await Fanout([sink], metrics).send(batch, lambda: ended.append(True))
            assert inner.attempts == 2 and [a.id for a in inner.alerts] == [
                a.id for a in batch[1:]]
            await asyncio.sleep(0.1)
            assert ended == [] and sink.held == 1
            clock.t_ns += 60 * NS_PER_S
            await _until(lambda: ended == [True])
            assert inner.alerts[-1].id == batch[0].id

    asyncio.run(main())
