"""The evaluation's evidence rules (``geosentry.training.evaluate.geomag.evidence``) on small fixed cases:
they decide whether a quiet-day alert is an instrument artefact, the field, or a false alarm."""

from __future__ import annotations

import numpy as np

from geosentry.stream.decode.iaga import IagaFile
from geosentry.stream.records import NS_PER_S, Alert, ModelRef
from geosentry.training.evaluate.geomag import evidence

T0 = 1_396_828_800 * NS_PER_S
N = 3600


def day(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h = 20000 + np.cumsum(rng.normal(0, 0.02, N))
    z = 45000 + np.cumsum(rng.normal(0, 0.02, N))
    e = np.cumsum(rng.normal(0, 0.02, N))
    return {"H": h, "E": e, "Z": z, "F": np.hypot(h, z) + 1.5}


def alert(station: str, channel: str, i: int, label: str, kind: str = "health",
          score: float = 10.0) -> Alert:
    details = ({"event": "artefact", "artefact": label} if kind == "health"
               else {"detector": label, "profile": "mid"})
    return Alert(kind=kind, network="NT", station=station, location="R0", channel=channel,
                 time_ns=T0 + i * NS_PER_S, score=score, threshold=3.0,
                 model=ModelRef("t", "t", "0"), newest_arrival_ns=0, details=details)


def judge(el: dict[str, np.ndarray], a: Alert, others: list[tuple[str, Alert]] | None = None,
          day_files: dict[str, IagaFile] | None = None) -> tuple[str, str]:
    f = IagaFile(a.station, "R0", T0, 1.0, el)
    return evidence(a, f, others or [], day_files or {a.station: f})


def test_an_f_only_spike_is_an_artefact() -> None:
    el = day()
    el["F"][2000] -= 23.0  # the scalar instrument drops 23 nT for one second, the vector does not
    verdict, why = judge(el, alert("TST", "LFF", 2000, "spike"))
    assert verdict == "artefact" and "F moved -22.9" in why


def test_an_isolated_east_spike_is_an_artefact() -> None:
    el = day()
    el["E"][2000] += 40.0  # F cannot see E; one sample off a line its neighbours agree on
    verdict, why = judge(el, alert("TST", "LFE", 2000, "spike"))
    assert verdict == "artefact" and "off its neighbours" in why


def test_a_vector_spike_that_f_contradicts_is_an_artefact() -> None:
    el = day()
    el["Z"][2000] += 5.0  # F should have moved ~4.6 nT with it
    assert judge(el, alert("TST", "LFZ", 2000, "spike"))[0] == "artefact"


def test_a_real_field_change_seen_by_both_instruments_is_not_verified() -> None:
    el = day()
    bump = 4.0 * np.exp(-0.5 * ((np.arange(N) - 2000) / 1.5) ** 2)  # a fast but smooth change
    el["H"] = el["H"] + bump
    el["F"] = np.hypot(el["H"], el["Z"]) + 1.5  # F follows the vector
    assert judge(el, alert("TST", "LFH", 2000, "spike"))[0] == "false"


def test_a_vector_step_that_f_does_not_follow_is_an_artefact() -> None:
    el = day()
    el["Z"][2000:] += 8.0  # F stays: F - |B| shifts by about -7.3 nT
    verdict, why = judge(el, alert("TST", "LFZ", 2000, "step"))
    assert verdict == "artefact" and "shifts" in why


def test_dbdt_seen_at_another_observatory_is_geophysical() -> None:
    a, b = alert("AAA", "LFH", 2000, "dbdt", "detection", 40.0), \
        alert("BBB", "LFH", 2100, "dbdt", "detection", 45.0)
    assert judge(day(), a, [("AAA", a), ("BBB", b)])[0] == "geophysical"
    assert judge(day(), a, [("AAA", a)])[0] == "false"


def test_a_dropout_needs_missing_values_in_the_file() -> None:
    el = day()
    el["H"][1900:1990] = np.nan
    gap = alert("TST", "LFH", 1990, "reset_gap")
    gap.details.clear()
    gap.details["event"] = "reset_gap"
    assert judge(el, gap)[0] == "dropout"
    assert judge(day(), gap)[0] == "false"


def test_a_two_sample_east_glitch_on_a_steep_variation_is_an_artefact() -> None:
    el = day()
    el["E"] += 3.0 * np.arange(N) - 1e-4 * np.arange(N) ** 2  # 3 nT/s and slowing, like DED
    el["E"][2000] -= 21.0  # down one second, up the next: the 0.25 Hz low-pass cannot do that
    el["E"][2001] += 10.0
    verdict, why = judge(el, alert("TST", "LFE", 2000, "spike"))
    assert verdict == "artefact" and "smooth curve" in why


def test_a_filtered_field_impulse_is_not_verified() -> None:
    from scipy.signal import firwin

    el = day()
    el["E"] += 3.0 * np.arange(N)
    taps = firwin(123, 0.25, fs=10, window="blackman")
    pulse = 20.0 * taps[1::10] / taps[61]  # a field impulse as USGS 1 s data show it
    el["E"][2000 - 6:2000 + 7] += pulse  # peak at 2000, neighbours at 57 % of it
    assert judge(el, alert("TST", "LFE", 2000, "spike"))[0] == "false"
