"""What operators would otherwise run, on the same data: SeisBench ``annotate`` (our exported
network inside SeisBench's PhaseNet wrapper, and SeisBench's own PhaseNet with random weights),
whole-trace and as a streaming wrapper, and ObsPy ``recursive_sta_lta`` + ``trigger_onset``."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from bench import scaleout
from bench.common import Plan, cores, stats
from bench.sections import service_picker

#: SeisBench's PhaseNet window and the service's throughput-mode stride, in seconds.
WINDOW_S, STRIDE_S = 30.0, 15.0


def seisbench_streaming(model: Any, st: Any, repeats: int) -> dict[str, Any]:
    """SeisBench as a live service would have to use it: a rolling buffer per station, and every
    stride (15 s of data) ``annotate`` on each station's newest window (30 s), all stations in one
    call, so one forward pass per station per stride, the same count as the service. The slices
    are cut before the clock starts (free for SeisBench); what is timed is ``annotate`` alone."""
    t0 = max(tr.stats.starttime for tr in st)
    t_end = min(tr.stats.endtime for tr in st)
    steps = int((t_end - t0 - WINDOW_S) // STRIDE_S) + 1
    chunks = [st.slice(t0 + k * STRIDE_S, t0 + k * STRIDE_S + WINDOW_S) for k in range(steps)]
    n = len({tr.stats.station for tr in st})
    # per station: the data it was given (as for the service, which cuts the same windows)
    covered_s = round(t_end - t0 + st[0].stats.delta, 3)
    rates = []
    for _ in range(repeats):
        t_start = time.perf_counter()
        for chunk in chunks:
            model.annotate(chunk, batch_size=64)
        rates.append(n * covered_s / (time.perf_counter() - t_start))
    return {"stations": n, "seconds_of_data": covered_s, "calls": steps,
            "window_s": WINDOW_S, "stride_s": STRIDE_S, "batch_size": 64,
            "station_seconds_per_s": stats(rates, "station-s/s", 0),
            "samples_per_s": stats([r * 300 for r in rates], "samples/s", 0)}


def _pairs(pairs: int, n: int, seconds: float, load: Any, cfgs: dict[str, Any],
           dets: dict[str, Any], members: Any, nets: dict[str, Any], st: Any,
           rows: dict[str, list[float]]) -> None:
    """``pairs`` rounds of: the service (each config, then scaled out), then SeisBench (each
    precision, streaming wrapper then whole traces); rates appended to ``rows``."""
    import torch

    from bench.common import service_workers
    from bench.harness import fresh_state, run_case

    for _ in range(pairs):
        for key, cfg in cfgs.items():
            fresh_state(dets[key])
            torch.set_num_threads(max(1, cores() // service_workers()))  # as the service sets it
            rows.setdefault(f"service_{key}", []).append(
                n * seconds / run_case(load, cfg, detectors=dets[key]).wall_s)
        if members is not None:  # one process per core, as a consumer group deploys it
            rows.setdefault("service_scaleout", []).append(members.run())
        torch.set_num_threads(cores())
        for precision, net in nets.items():
            rows.setdefault(f"streaming_{precision}", []).append(
                seisbench_streaming(net, st, 1)["station_seconds_per_s"]["median"])
            t0 = time.perf_counter()
            net.annotate(st, overlap=1500, batch_size=64)
            rows.setdefault(f"whole_{precision}", []).append(n * seconds / (time.perf_counter() - t0))


def paired_ratios(plan: Plan, nets: dict[str, Any], st: Any, pairs: int = 5) -> dict[str, Any]:
    """The service (defaults, one process, picker throughput case; and scaled out to one process
    per core, ``bench.scaleout.HeldMembers``) and SeisBench on the same network run back to
    back, ``pairs`` times: streaming wrapper, then whole traces. Drift in
    what the shared machine gives then hits both sides of each ratio alike; the floor uses the
    median of these ratios. ``nets`` maps a precision (``fp32``, and ``bf16`` when the service
    runs the picker at bfloat16 here) to SeisBench's wrapper computing at it: the service at
    each precision is compared with SeisBench at the same one (like for like), and the
    service's default with SeisBench's default (float32)."""
    import torch

    from bench.data import build_load
    from bench.harness import config
    from geosentry.stream.detectors.base import LoadedModel
    from geosentry.stream.detectors.factory import build_detectors

    n, seconds = plan.tp_picker
    load = build_load(n, seconds)
    cfgs = {"default": config("picker")}
    if "bf16" in nets:
        cfgs["fp32"] = config("picker", precision="fp32")
    dets = {k: build_detectors(c) for k, c in cfgs.items()}
    default = next(d.precision for d in dets["default"] if isinstance(d, LoadedModel))
    members = (scaleout.HeldMembers("picker", n, seconds, pairs, cores(), precision=default)
               if cores() > 1 else None)
    rows: dict[str, list[float]] = {}
    try:
        _pairs(pairs, n, seconds, load, cfgs, dets, members, nets, st, rows)
    finally:
        torch.set_num_threads(1)
        if members is not None:
            members.close()
    service_at = {default: rows["service_default"], **({"fp32": rows["service_fp32"]}
                                                       if "service_fp32" in rows else {})}

    def ratios(a: list[float], b: list[float]) -> dict[str, Any]:
        return stats([x / y for x, y in zip(a, b)], "x", 2)

    out: dict[str, Any] = {"pairs": pairs, "service_precision": default,
                           **{k: stats(v, "station-s/s", 0) for k, v in rows.items()},
                           # the floor: the service's default against SeisBench at the same precision
                           "ratio_vs_streaming": ratios(rows["service_default"],
                                                        rows[f"streaming_{default}"]),
                           "ratio_vs_whole_trace": ratios(rows["service_default"],
                                                          rows[f"whole_{default}"]),
                           "ratio_default_vs_seisbench_default_streaming": ratios(
                               rows["service_default"], rows["streaming_fp32"]),
                           "ratio_default_vs_seisbench_default_whole": ratios(
                               rows["service_default"], rows["whole_fp32"])}
    if members is not None:  # the scale-out runs at the service's default precision too
        out["scaleout_processes"] = members.processes
        out["scaleout_precision"] = members.precision
        out["ratio_scaleout_vs_streaming"] = ratios(rows["service_scaleout"],
                                                    rows[f"streaming_{default}"])
        out["ratio_scaleout_vs_whole_trace"] = ratios(rows["service_scaleout"],
                                                      rows[f"whole_{default}"])
    for precision, svc in service_at.items():
        out[f"ratio_{precision}_vs_streaming"] = ratios(svc, rows[f"streaming_{precision}"])
        out[f"ratio_{precision}_vs_whole_trace"] = ratios(svc, rows[f"whole_{precision}"])
    return out


def seisbench_wrapper(sbm: Any, module: Any, device: Any, precision: str) -> Any:
    """SeisBench's PhaseNet wrapper (its ``annotate``: windows, batches, stacking) around our
    exported network, computing at ``precision`` as the service would."""
    import torch

    from geosentry.stream.inference.precision import autocast

    def forward(x: Any, logits: bool = False) -> Any:
        with autocast(device, precision):
            return module(x).float()

    net = sbm.PhaseNet(phases="PSN", sampling_rate=100, norm="std")
    net.forward = forward
    net.eval()
    torch.set_num_threads(cores())
    return net


def bench_references(plan: Plan) -> dict[str, Any]:
    """SeisBench annotate (our network inside SeisBench's PhaseNet wrapper, and SeisBench's own
    PhaseNet with random weights) and ObsPy recursive_sta_lta + trigger_onset, same data."""
    import torch

    from bench.data import station_streams

    out: dict[str, Any] = {}
    n, seconds = plan.tp_picker
    st = station_streams(n, seconds)
    try:
        warnings.filterwarnings("ignore")
        t0 = time.perf_counter()
        import seisbench
        import seisbench.models as sbm

        out["seisbench_version"] = seisbench.__version__
        out["seisbench_import_s"] = round(time.perf_counter() - t0, 2)
    except Exception as exc:  # optional: pip install -e '.[bench]'
        out["seisbench_skipped"] = f"seisbench not importable: {exc!r}"
        sbm = None
    if sbm is not None:
        ours = service_picker(torch.device("cpu"))  # frozen, exactly what the service runs
        nets = {"fp32": seisbench_wrapper(sbm, ours.module, ours.device, "fp32")}
        if ours.precision == "bf16":
            nets["bf16"] = seisbench_wrapper(sbm, ours.module, ours.device, "bf16")
        same = nets["fp32"]  # SeisBench's default arithmetic
        native = sbm.PhaseNet(phases="PSN", sampling_rate=100, norm="std").eval()
        # SeisBench uses the cores through torch's intra-op threads; geosentry through workers
        for key, model, threads in (("seisbench_annotate_same_net", same, cores()),
                                    ("seisbench_annotate_same_net_one_core", same, 1),
                                    ("seisbench_annotate_phasenet", native, cores())):
            torch.set_num_threads(threads)
            rates = []
            for _ in range(plan.repeats):
                t0 = time.perf_counter()
                model.annotate(st, overlap=1500, batch_size=64)
                rates.append(n * seconds / (time.perf_counter() - t0))
            out[key] = {"stations": n, "seconds_of_data": seconds, "overlap": 1500,
                        "batch_size": 64, "torch_threads": threads,
                        "station_seconds_per_s": stats(rates, "station-s/s", 0),
                        "samples_per_s": stats([r * 300 for r in rates], "samples/s", 0)}
        torch.set_num_threads(cores())
        out["seisbench_streaming_same_net"] = {
            **seisbench_streaming(same, st, plan.repeats), "torch_threads": cores()}
        out["paired"] = paired_ratios(plan, nets, st, pairs=plan.repeats + 2)
        torch.set_num_threads(1)
    from obspy.signal.trigger import recursive_sta_lta, trigger_onset

    n2, seconds2 = plan.tp_stalta
    st2 = station_streams(n2, seconds2).select(component="Z")
    rates = []
    for _ in range(plan.repeats):
        t0 = time.perf_counter()
        for tr in st2:
            x = tr.copy().filter("bandpass", freqmin=1.0, freqmax=20.0, corners=4,
                                 zerophase=False).data.astype(np.float64)
            trigger_onset(recursive_sta_lta(x, 50, 1000), 3.5, 1.0)
        rates.append(n2 * seconds2 / (time.perf_counter() - t0))
    out["obspy_stalta"] = {"stations": n2, "seconds_of_data": seconds2,
                           "station_seconds_per_s": stats(rates, "station-s/s", 0)}
    return out


