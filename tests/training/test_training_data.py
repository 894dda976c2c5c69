"""Readers, splitting, labels and augmentation (real-data tests skip without ../shared/data)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from geosentry.training.data import Augmenter, event_mask, normalise, pick_labels, read_iaga2002, station_split
from geosentry.training.data.phasenet import read_npz, station_of
from geosentry.training.data.synthetic import fallback_events
from geosentry.training.data.windows import downsample_mask

IAGA = """ Format                 IAGA-2002                                    |
 IAGA CODE              XYZ                                          |
 Reported               HDZF                                         |
 # a comment line                                                    |
DATE       TIME         DOY     XYZH      XYZD      XYZZ      XYZF   |
2014-04-07 00:00:00.000 097     20886.60     -7.09  47539.03  52460.14
2014-04-07 00:00:01.000 097     99999.00     -7.08  47539.03  52460.11
2014-04-07 00:00:02.000 097     20886.51     -7.09  47539.05  88888.00
"""


def test_iaga_reader_parses_and_masks_missing(tmp_path: Path) -> None:
    path = tmp_path / "xyz20140407vsec.sec.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(IAGA)
    rec = read_iaga2002(path)
    assert rec.station == "XYZ" and rec.components == ("H", "E", "Z", "F")  # D -> E (nT)
    assert rec.data.shape == (3, 4) and rec.sampling_interval_s == 1.0
    assert np.isnan(rec.data[1, 0]) and np.isnan(rec.data[2, 3])
    assert np.isnan(rec.data[1, 1])  # E = H sin D is missing where H is
    assert rec.channels("HEZ").shape == (3, 3)
    assert str(rec.times[2]) == "2014-04-07T00:00:02.000"


def test_iaga_hez_matches_service_decoder(tmp_path: Path) -> None:
    """Training sees H, E, Z exactly as the service's IAGA-2002 decoder makes them (E = H sin D):
    the training reader is an adapter over ``geosentry.stream.decode.iaga``."""
    from geosentry.stream.decode.iaga import parse_iaga

    path = tmp_path / "xyz20140407vsec.sec"
    path.write_text(IAGA)
    hez = read_iaga2002(path).hez()
    service = parse_iaga(IAGA).elements
    assert hez.shape == (3, 3)
    for row, comp in zip(hez, "HEZ"):
        np.testing.assert_allclose(row, service[comp], rtol=0, atol=1e-9, equal_nan=True)


def test_shipped_geomag_contract_is_fed_by_the_service() -> None:
    """Every component of the shipped geomagnetic model is one the service's decoder produces,
    and its normalisation is one the service applies."""
    from geosentry.stream.decode.iaga import parse_iaga
    from geosentry.stream.inference.contract import ModelContract
    from geosentry.training.paths import MODELS_DIR

    path = MODELS_DIR / "anomaly-geomag.json"
    if not path.exists():
        pytest.skip("anomaly-geomag not shipped")
    c = ModelContract.load(path)
    assert set(c.components) <= set(parse_iaga(IAGA).elements), c.components
    assert c.normalisation.method == "none" and c.normalisation.demean


def test_normalise_matches_contract() -> None:
    x = np.stack([np.arange(10.0) + 5, np.zeros(10)])
    y = normalise(x, "std")
    assert abs(y[0].mean()) < 1e-6 and abs(y[0].std() - 1) < 1e-5
    assert np.all(y[1] == 0)
    assert np.abs(normalise(x, "peak")).max() <= 1.0


def test_labels() -> None:
    y = pick_labels(400, 100, 250, sigma=10)
    assert y.shape == (3, 400)
    assert y[0].argmax() == 100 and y[1].argmax() == 250
    assert np.all(y.sum(axis=0) <= 1.0 + 1e-6)
    assert pick_labels(100, None, None)[2].min() == 1.0
    m = event_mask(1000, 100, 200)
    assert m[100] == 1 and m[340] == 1 and m[341] == 0
    assert downsample_mask(m, 10).shape == (100,)


def test_station_split_is_disjoint() -> None:
    events = fallback_events(32, seed=1)
    train, test = station_split(events, 0.25, seed=0)
    assert {e.station_id for e in train}.isdisjoint({e.station_id for e in test})
    assert len(train) + len(test) == 32 and 4 <= len(test) <= 12


def test_augmenter_shapes_and_channel_drop() -> None:
    rng = np.random.default_rng(0)
    aug = Augmenter(p_drop_horizontals=1.0, noise_bank=[rng.standard_normal((3, 700))])
    x = aug(rng.standard_normal((3, 500)).astype(np.float32), rng)
    assert x.shape == (3, 500) and np.all(x[1:] == 0)
    assert np.isfinite(x).all()


def test_station_of() -> None:
    assert station_of("NC_MTU_2014071807051236_02.npz") == ("NC", "MTU")


@pytest.mark.shared
def test_phasenet_reader_real_data(shared_data: Callable[[str], Path]) -> None:
    folder = shared_data("phasenet/waveform_train")
    f = sorted(folder.glob("*.npz"))[0]
    ev = read_npz(f)
    raw = np.load(f)["data"]
    assert ev.data.shape == (3, 9001) and ev.itp == 3000
    np.testing.assert_allclose(ev.data[0], raw[:, 2].astype(np.float32))  # Z first
    np.testing.assert_allclose(ev.data[2], raw[:, 0].astype(np.float32))  # E last


@pytest.mark.shared
def test_iaga_reader_real_data(shared_data: Callable[[str], Path]) -> None:
    folder = shared_data("geomag/intermagnet-1s-2014-04")
    rec = read_iaga2002(folder / "bou20140407vsec.sec.gz")
    assert rec.station == "BOU" and rec.components == ("H", "E", "Z", "F")
    assert rec.data.shape == (86400, 4) and rec.sampling_interval_s == 1.0
    mins = shared_data("geomag/usgs-geomag-algorithms/adjusted/BOU201601vmin.min")
    assert read_iaga2002(mins).sampling_interval_s == 60.0


@pytest.mark.shared
def test_seisbench_reader_real_data(shared_data: Callable[[str], Path]) -> None:
    folder = shared_data("reference/seisbench-dummydataset")
    pytest.importorskip("h5py", reason="h5py not installed (needed for SeisBench hdf5)")
    from geosentry.training.data.seisbench import SeisBenchDataset

    ds = SeisBenchDataset(folder)
    assert len(ds) == 100
    w = ds.waveform(0)
    assert w.shape == (3, 1200) and np.isfinite(w).all()
    assert ds.attrs["component_order"] == "ZNE"
    ds.close()


@pytest.mark.shared
def test_phasenet_csv_agrees_with_npz_real_data(shared_data: Callable[[str], Path]) -> None:
    from geosentry.training.data.phasenet import read_phasenet_csv

    folder = shared_data("phasenet")
    rows = read_phasenet_csv(folder / "waveform.csv")
    assert len(rows) == 96
    for f in sorted((folder / "waveform_train").glob("*.npz"))[:5]:
        ev = read_npz(f)
        assert rows[f.name][:2] == (ev.itp, ev.its) and rows[f.name][2] == ev.channels


def _demo_picks() -> list[tuple[str, str, str]]:
    """(station, phase, time): P and S of the first local event on BW.UH1 / UH2 (by eye, 0.05 s)."""
    return [("UH1", "P", "2010-05-27T16:24:33.20"), ("UH1", "S", "2010-05-27T16:24:35.50"),
            ("UH2", "P", "2010-05-27T16:24:33.25")]


def test_mseed_reader_with_csv_and_quakeml_picks(tmp_path: Path) -> None:
    """ObsPy's bundled BW.UH* miniSEED (200 Hz, vertical only) + the same picks as CSV and as
    QuakeML: 100 Hz Z, N, E records with zero horizontals and P / S at the right samples."""
    import obspy
    from obspy.core.event import Catalog, Event, Pick, WaveformStreamID

    from geosentry.stream.testing import demo_stream
    from geosentry.training.data.mseed import mseed_events, read_picks

    st = demo_stream()
    files = []
    for tr in st:
        files.append(tmp_path / f"{tr.id}.mseed")
        tr.write(str(files[-1]), format="MSEED")
    csv_path = tmp_path / "picks.csv"
    csv_path.write_text("network,station,phase,time\n"
                        + "".join(f"BW,{s},{p},{t}\n" for s, p, t in _demo_picks()))
    ev = Event(picks=[Pick(time=obspy.UTCDateTime(t), phase_hint=p,
                           waveform_id=WaveformStreamID("BW", s, "", "EHZ"))
                      for s, p, t in _demo_picks()])
    qml = tmp_path / "picks.xml"
    Catalog([ev]).write(str(qml), format="QUAKEML")
    for picks in (read_picks(csv_path), read_picks(qml)):
        events = mseed_events(files, picks, before_s=10.0, after_s=20.0)
        assert [e.station_id for e in events] == ["BW.UH1", "BW.UH2"]
        uh1 = events[0]
        assert uh1.data.shape == (3, 3001) and uh1.itp == 1000 and uh1.its == 1230
        assert not uh1.three_component and np.any(uh1.data[0])
        assert events[1].its == -1  # no S pick at UH2
        z = uh1.data[0]
        assert z[1000:1300].std() > 3 * z[500:900].std()  # the event starts at the P sample
        ref = st.select(station="UH1")[0].copy()  # 200 -> 100 Hz, cut where the P pick says
        ref.data = ref.data.astype(np.float64)
        ref.detrend("demean")
        ref.resample(100.0)
        t0 = obspy.UTCDateTime("2010-05-27T16:24:23.20")
        ref.trim(t0, t0 + 30.0, nearest_sample=True)
        assert ref.stats.npts == 3001  # same samples (the reader resamples a shorter segment)
        assert np.corrcoef(z - z.mean(), ref.data - ref.data.mean())[0, 1] > 0.99


@pytest.mark.shared
def test_mseed_reader_round_trips_real_phasenet_event(
        tmp_path: Path, shared_data: Callable[[str], Path]) -> None:
    """A real PhaseNet record written as miniSEED (3 components) + its P / S as CSV reads back
    into the same Z, N, E samples and pick indices as the npz reader."""
    import obspy

    from geosentry.training.data.mseed import mseed_events, read_picks

    folder = shared_data("phasenet/waveform_train")
    ev = next(read_npz(f) for f in sorted(folder.glob("*.npz")) if read_npz(f).three_component)
    t0 = obspy.UTCDateTime("2020-01-01T00:00:00")
    st = obspy.Stream([obspy.Trace(ev.data[k].astype(np.float32), header={
        "network": ev.network, "station": ev.station, "channel": f"HH{c}", "sampling_rate": 100.0,
        "starttime": t0}) for k, c in enumerate("ZNE")])
    path = tmp_path / "ev.mseed"
    st.write(str(path), format="MSEED")
    picks = tmp_path / "picks.csv"
    picks.write_text("station_id,phase,time,event_id\n"
                     f"{ev.station_id},P,{t0 + ev.itp / 100.0},e1\n"
                     f"{ev.station_id},S,{t0 + ev.its / 100.0},e1\n")
    (got,) = mseed_events([path], read_picks(picks), before_s=ev.itp / 100.0,
                          after_s=(ev.data.shape[1] - 1 - ev.itp) / 100.0)
    assert (got.itp, got.its) == (ev.itp, ev.its) and got.three_component
    np.testing.assert_allclose(got.data, ev.data, rtol=0, atol=1e-3)
