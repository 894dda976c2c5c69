"""Restricted stations through the secured transport (issue #18): two Kafka principals and topic
ACLs on a real secure broker (``broker.sh start --secure``, started by this module).

``geosentry run`` over ObsPy's bundled BW.UH1-UH4 recordings with a policy file (UH1 masked and
UH2 withheld for ``public``, UH3/UH4 allowed) writes, as the service principal ``svc`` (WRITE on
both topics, READ on neither), to an ``?audience=internal`` and an ``?audience=public`` topic.
The ``public`` principal (READ on the public topic and its group only) is refused the internal
topic (``TopicAuthorizationFailedError``) and reads the public one, where no key or value names
the withheld or masked stations: not their codes, not ``NET.STA``, not an unkeyed hash of their
names, not the id any of their alerts has on the internal topic. The ``internal`` principal reads
the internal topic: every station's alerts, unmasked.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import TopicAuthorizationFailedError

from geosentry.stream.policy import MASKED_NETWORK, load_policy, pseudonym
from geosentry.stream.testing import interleaved, read_topic
from tests.integration.securebroker import create_topics, Secure, secure_broker

pytestmark = [pytest.mark.kafka_secure, pytest.mark.timeout(180)]
USERS = ("svc", "public", "internal")
#: topics pol-int-* / pol-pub-*, groups int-* / pub-*: the service writes, each audience reads its own
ACLS = ("svc:WRITE:topic:pol-int-*", "svc:WRITE:topic:pol-pub-*",
        "public:READ:topic:pol-pub-*", "public:READ:group:pub-*",
        "internal:READ:topic:pol-int-*", "internal:READ:group:int-*")
KEY = "policy-kafka-test-key-0123456789"
POLICY = """
[[stations]]
match = "BW.UH1"
public = "mask"
[[stations]]
match = "BW.UH2"
public = "withhold"
[[stations]]
match = ["BW.UH3", "BW.UH4"]
public = "allow"
"""
RESTRICTED = ("UH1", "UH2")


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    yield from secure_broker(tmp_path_factory.mktemp("kafka-policy"), USERS, ACLS)


async def _read_in_group(secure: Secure, user: str, topic: str, group: str,
                         idle_s: float = 2.0) -> list[tuple[bytes, bytes]]:
    """Every record of ``topic`` as ``user`` in consumer group ``group`` (offsets committed:
    the group ACL is exercised, not only the topic's)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=secure.bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                **secure.security(user).client_kwargs())
    await consumer.start()
    out: list[tuple[bytes, bytes]] = []
    try:
        idle = 0.0
        while idle < idle_s:
            batch = await consumer.getmany(timeout_ms=500)
            idle = idle + 0.5 if not batch else 0.0
            out += [(m.key, m.value) for msgs in batch.values() for m in msgs]
        await consumer.commit()
    finally:
        await consumer.stop()
    return out


def _unkeyed_hashes(network: str, station: str) -> list[str]:
    """What a careless masking would publish: plain digests of the station's names (hex, and
    their 10- and 32-digit prefixes, the lengths of pseudonyms and alert ids)."""
    out = []
    for name in (station, f"{network}.{station}", f"{network}.{station}.",
                 f"{network}.{station}..EHZ", f"station|{network}.{station}"):
        for algo in ("md5", "sha1", "sha256"):
            digest = hashlib.new(algo, name.encode()).hexdigest()
            out += [digest, digest[:10], digest[:32]]
    return out


async def test_public_principal_sees_no_restricted_station_and_cannot_read_internal(
        secure: Secure, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    internal_topic, public_topic = f"pol-int-{tag}", f"pol-pub-{tag}"
    await create_topics(secure, internal_topic, public_topic)
    data = tmp_path / "demo.mseed"
    data.write_bytes(b"".join(interleaved()))
    key_file = tmp_path / "policy.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[mask]\nkey_file = "policy.key"\n{POLICY}')
    cfg = tmp_path / "geosentry.toml"
    cfg.write_text(f'policy_file = "{policy}"\n'
                   f'sinks = ["kafka://{secure.bootstrap}/{internal_topic}?audience=internal", '
                   f'"kafka://{secure.bootstrap}/{public_topic}?audience=public"]\n'
                   + secure.kafka_toml("svc"))
    cfg.chmod(0o600)
    out, err = tmp_path / "run.out", tmp_path / "run.err"
    began = time.monotonic()
    with out.open("w") as o, err.open("w") as e:
        done = subprocess.run([sys.executable, "-m", "geosentry.stream.cli", "run", "--source",
                               str(data), "--config", str(cfg)], stdout=o, stderr=e, timeout=120)
    assert done.returncode == 0, err.read_text()[-3000:]
    assert time.monotonic() - began < 60

    # the public principal: refused the internal topic ...
    refused = AIOKafkaConsumer(internal_topic, bootstrap_servers=secure.bootstrap,
                               group_id=f"pub-{tag}", **secure.security("public").client_kwargs())
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await refused.start()
    finally:
        await refused.stop()
    with pytest.raises(TopicAuthorizationFailedError):  # without a group too
        await read_topic(secure.bootstrap, internal_topic, idle_s=1.0,
                         security=secure.security("public"))
    # ... and the service principal, which only writes, cannot read back either
    with pytest.raises(TopicAuthorizationFailedError):
        await read_topic(secure.bootstrap, public_topic, idle_s=1.0,
                         security=secure.security("svc"))

    # the internal principal reads every station's alerts, unmasked
    internal_records = await _read_in_group(secure, "internal", internal_topic, f"int-{tag}")
    internal = [json.loads(v) for _, v in internal_records]
    by_station: dict[str, list[dict[str, Any]]] = {}
    for a in internal:
        by_station.setdefault(a["station"], []).append(a)
    assert set(by_station) >= {"UH1", "UH2", "UH3", "UH4", "*"}, sorted(by_station)
    assert all(a["network"] == "BW" and "policy" not in a["details"] for a in internal)
    assert {k.decode() for k, _ in internal_records} >= {"BW.UH1", "BW.UH2"}
    restricted_ids = {a["id"] for s in RESTRICTED for a in by_station[s]}

    # the public principal reads its topic in its group: nothing identifies UH1 or UH2
    public_records = await _read_in_group(secure, "public", public_topic, f"pub-{tag}")
    assert public_records
    public = [json.loads(v) for _, v in public_records]
    text = "\n".join(k.decode() + "\t" + v.decode() for k, v in public_records)
    needles = [*RESTRICTED, *(f"BW.{s}" for s in RESTRICTED), *restricted_ids,
               *(h for s in RESTRICTED for h in _unkeyed_hashes("BW", s))]
    leaks = [n for n in needles if n in text]
    assert not leaks, leaks
    assert not any(a["network"] == "BW" and a["station"] in RESTRICTED for a in public)
    mask = load_policy(policy).mask
    assert mask is not None
    masked = pseudonym(mask.key, "BW", "UH1")
    stations = {a["station"] for a in public}
    assert {"UH3", "UH4", masked} <= stations <= {"UH3", "UH4", masked, "*"}, stations
    # masking is one for one (UH1's alerts are there, under the pseudonym), withholding drops
    # all of UH2's; allowed stations arrive unchanged, ids included
    pub_masked = [a for a in public if a["station"] == masked]
    assert len(pub_masked) == len(by_station["UH1"])
    assert all(a["network"] == MASKED_NETWORK and a["location"] == ""
               and a["details"]["policy"] == "mask" for a in pub_masked)
    for s in ("UH3", "UH4"):
        assert sorted(a["id"] for a in public if a["station"] == s) == \
            sorted(a["id"] for a in by_station[s])
    # a network detection on the public topic: UH2 gone from its members, UH1 a pseudonym
    for a in public:
        if a["station"] == "*" and "stations" in a["details"]:
            assert set(a["details"]["stations"]) <= {"UH3", "UH4", masked}
