"""The benchmark's Markdown table, figures and floor verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import ratio

def _fmt(s: dict[str, Any] | None, digits: int = 0) -> str:
    if not s or s.get("median") is None:
        return "n/a"
    f = f"{{:,.{digits}f}}"
    return f"{f.format(s['median'])} ({f.format(s['min'])}–{f.format(s['max'])})"


def markdown(res: dict[str, Any]) -> str:
    m, tp, ref, dec = res["machine"], res["throughput"], res["references"], res["decode"]
    pk, sl = tp["picker"], tp["stalta"]
    rows = [("figure", "geosentry", "reference", "ratio")]
    sb = ref.get("seisbench_annotate_same_net")
    sb1 = ref.get("seisbench_annotate_same_net_one_core")
    sbn = ref.get("seisbench_annotate_phasenet")
    sbs = ref.get("seisbench_streaming_same_net")
    skipped = ref.get("seisbench_skipped", "SeisBench skipped")

    def vs(ours: dict[str, Any], theirs: dict[str, Any] | None, label: str,
           key: str = "station_seconds_per_s") -> tuple[str, str]:
        if not theirs:
            return skipped, "–"
        return f"{label}: {_fmt(theirs[key])}", f"{ratio(ours[key], theirs[key])}×"

    rows.append((f"picker throughput, stride {pk['stride_s']:g} s, {m['cores']} cores "
                 f"({pk['workers']} inference workers) (station-s/s; {pk['stations']} stations × "
                 f"{pk['seconds_of_data']:g} s)", _fmt(pk["station_seconds_per_s"]),
                 *vs(pk, sb, f"SeisBench annotate, same network, {m['cores']} torch threads, "
                     "whole 230 s traces (offline)")))
    if sbs:
        rows.append(("", "", *vs(pk, sbs, f"SeisBench annotate as a streaming wrapper (every "
                                      f"{sbs['stride_s']:g} s each station's newest "
                                      f"{sbs['window_s']:g} s, all stations per call), same "
                                      f"network, {sbs['torch_threads']} torch threads")))
    if sbn:
        rows.append(("", "", *vs(pk, sbn, "SeisBench annotate, its PhaseNet")))
    rows.append(("picker throughput (samples/s)", _fmt(pk["samples_per_s"]),
                 *vs(pk, sb, "SeisBench same network", "samples_per_s")))
    one = tp.get("picker_one_core")
    if one:
        rows.append(("picker throughput, one core (1 worker, 1 thread) (station-s/s)",
                     _fmt(one["station_seconds_per_s"]),
                     *vs(one, sb1, "SeisBench annotate, same network, 1 thread")))
    pr = ref.get("paired")
    if pr:
        dp = pr.get("service_precision", "fp32")
        svc = pr.get("service_default", pr.get("service"))
        like = f"SeisBench at {dp} too" if dp != "fp32" else "SeisBench at fp32"
        rows.append((f"picker throughput and SeisBench (same network) run back to back, "
                     f"{pr['pairs']} pairs: the ratio of each pair (station-s/s); service "
                     f"defaults (picker at {dp}) vs {like}",
                     f"service {_fmt(svc)}",
                     f"streaming wrapper {_fmt(pr.get(f'streaming_{dp}', pr.get('streaming')))} · "
                     f"whole traces {_fmt(pr.get(f'whole_{dp}', pr.get('whole')))}",
                     f"{_fmt(pr['ratio_vs_streaming'], 2)}× · {_fmt(pr['ratio_vs_whole_trace'], 2)}×"))
        if dp != "fp32" and "service_fp32" in pr:
            rows.append(("", f"service pinned to fp32 (`inference.precision = \"fp32\"`) "
                             f"{_fmt(pr['service_fp32'])}",
                         f"SeisBench at fp32 (its default): streaming wrapper "
                         f"{_fmt(pr['streaming_fp32'])} · whole traces {_fmt(pr['whole_fp32'])}",
                         f"{_fmt(pr['ratio_fp32_vs_streaming'], 2)}× · "
                         f"{_fmt(pr['ratio_fp32_vs_whole_trace'], 2)}×"))
        if "ratio_scaleout_vs_whole_trace" in pr:
            rows.append(("", f"service scaled out ({pr['scaleout_processes']} processes × 1 "
                             f"worker, as a consumer group deploys it; {dp}) "
                             f"{_fmt(pr['service_scaleout'])}", f"SeisBench at {dp}, as above",
                         f"{_fmt(pr['ratio_scaleout_vs_streaming'], 2)}× · "
                         f"{_fmt(pr['ratio_scaleout_vs_whole_trace'], 2)}×"))
        if dp != "fp32" and "service_fp32" in pr:
            rows.append(("", f"service defaults ({dp}) {_fmt(svc)}",
                         "SeisBench defaults (fp32), as above",
                         f"{_fmt(pr['ratio_default_vs_seisbench_default_streaming'], 2)}× · "
                         f"{_fmt(pr['ratio_default_vs_seisbench_default_whole'], 2)}×"))
    so = tp.get("picker_scaleout")
    if so:
        rows.append((f"picker throughput scaled out: {so['processes']} processes × 1 worker "
                     f"(stations split as consumer-group members own them) (station-s/s)",
                     _fmt(so["station_seconds_per_s"]),
                     *vs(so, sbs, "SeisBench annotate as a streaming wrapper")))
        if sb:
            rows.append(("", "", *vs(so, sb, "SeisBench annotate, whole traces (offline)")))
    pa = tp.get("picker_anomaly")
    if pa:
        rows.append(("picker + anomaly scorer throughput (station-s/s)",
                     _fmt(pa["station_seconds_per_s"]), "picker alone (row 1)",
                     f"{ratio(pa['station_seconds_per_s'], pk['station_seconds_per_s'])}×"))
    pas = tp.get("picker_anomaly_scaleout")
    if pas:
        rows.append((f"picker + anomaly scorer throughput, {pas['processes']} processes "
                     "(station-s/s)", _fmt(pas["station_seconds_per_s"]), "one process (row above)",
                     f"{ratio(pas['station_seconds_per_s'], (pa or pas)['station_seconds_per_s'])}×"))
    ob = ref["obspy_stalta"]
    rows.append((f"STA/LTA throughput, stride {sl['stride_s']:g} s, window {sl['window_s']:g} s "
                 f"(station-s/s; {sl['stations']} stations)", _fmt(sl["station_seconds_per_s"]),
                 f"ObsPy recursive_sta_lta + trigger_onset, whole trace: "
                 f"{_fmt(ob['station_seconds_per_s'])}",
                 f"{ratio(sl['station_seconds_per_s'], ob['station_seconds_per_s'])}×"))
    rows.append(("STA/LTA throughput (samples/s)", _fmt(sl["samples_per_s"]), "", ""))
    cap = res["capacity"]
    chk = cap.get("check")
    rows.append((f"real-time capacity, picker (stride 15 s) + anomaly scorer (stations; "
                 f"{cap.get('deployment', '1 process')}, the faster deployment)",
                 f"≈ {cap['estimate_stations']:,} (estimate)" if cap["estimate_stations"] else "n/a",
                 "; ".join(f"paced check at {c['stations']:,}: "
                           f"{'kept up' if c['kept_up'] else 'fell behind'} (source lag p99 "
                           f"{c['source_lag_p99_s']} s, drain {c['drain_after_last_record_s']} s)"
                           for c in cap.get("checks") or [chk])
                 if chk else "paced check: full mode only", "floor 5,000"))
    rows += latency_rows(res)
    ov = res.get("overload")
    if ov and "skipped" not in ov:
        ev = ov["health_events"]
        stop = ov.get("stopped_after_drop_s")
        rows.append((f"overload: {ov['stations']:,} stations = 2 × capacity at stride 1 s, paced "
                     f"{ov['paced_s']:g} s, then {ov['stations_after']:,} for "
                     f"{ov['recovery_paced_s']:g} s", f"shed {ov['windows_shed']:,} of "
                     f"{ov['windows']:,} windows ({ov['shed_fraction']}); alerts p99 "
                     f"{ov['alert_latency_p99_ms']} ms; after recovery p99 "
                     f"{ov['after_recovery_p99_ms']} ms ({ov['after_recovery_alerts']} alerts)",
                     f"health alerts overload_started/stopped: {ev.count('overload_started')}/"
                     f"{ev.count('overload_stopped')}"
                     + (f", stopped {stop} s after the input fell to half capacity"
                        if stop is not None else ", never stopped")
                     + f"; source lag p99 {ov['source_lag_p99_s']} s", ""))
    sg = res.get("stages")
    if sg:
        rows.append(("where the time goes, picker, 1 worker (s per station-hour of data)",
                     f"decode {_fmt(sg['decode'], 3)} · decode + windows {_fmt(sg['decode_windows'], 3)}"
                     f" · inference batches {_fmt(sg['inference'], 3)}",
                     f"whole run: wall {_fmt(sg['pipeline_wall'], 3)}, CPU {_fmt(sg['pipeline_cpu'], 3)}",
                     ""))
    sw = res.get("batch_sweep")
    if sw:
        parts = " · ".join(f"B={b}: {_fmt(r['windows_per_s'])}/s, {_fmt(r['batch_ms'], 1)} ms"
                           for b, r in sw["by_batch"].items())
        rows.append((f"batch-size sweep, picker forward on {sw['device']} (windows/s, ms/batch)",
                     parts, f"best batch within {sw['budget_ms']:g} ms: "
                     f"{sw['best_batch_within_budget']}", ""))
    rss = res["rss"]
    for n, row in rss["by_stations"].items():
        rows.append((f"peak RSS, N = {n} ({rss['mode']})", f"{_fmt(row['rss_peak_mb'])} MB",
                     f"of which input held by the test source {row['input_mb']} MB", ""))
    if "growth_kb_per_station" in rss:
        rows.append(("RSS growth per station", f"{rss['growth_kb_per_station']:,} kB", "", ""))
    rows.append(("decode, 512-byte Steim2 record (records/s)", f"pymseed {_fmt(dec['pymseed'])}",
                 f"obspy.read {_fmt(dec['obspy'])}", f"{dec['ratio_pymseed_vs_obspy']}×"))
    pc = res.get("parallel_cpu")
    if pc and len(pc) > 1:
        many = max(pc, key=lambda k: int(k.split("_")[1]))
        rows.append(("parallel compute available to one process (numpy sort, CPU s per wall s)",
                     f"1 thread {_fmt(pc['threads_1'], 2)}",
                     f"{many.split('_')[1]} threads {_fmt(pc[many], 2)}", ""))
    fw = res["forward"]
    rows.append(("picker forward alone, B = 64, fp32 (windows/s)", f"1 thread {_fmt(fw['threads_1'])}",
                 f"2 threads {_fmt(fw['threads_2'])}", f"{ratio(fw['threads_1'], fw['threads_2'])}×"))
    if "threads_1_bf16" in fw:
        rows.append(("picker forward alone, B = 64, bf16 (the service's choice here: "
                     f"{res['models']['picker']['reason']}) (windows/s)", f"1 thread {_fmt(fw['threads_1_bf16'])}",
                     f"2 threads {_fmt(fw['threads_2_bf16'])}",
                     f"{ratio(fw['threads_1_bf16'], fw['threads_1'])}× fp32 (1 thread)"))
    whole = fw["threads_1_bf16" if fw["service_precision"] == "bf16" else "threads_1"]
    for key in ("range_stride_15", "range_stride_1"):
        rg = fw.get(key)
        if rg:
            rows.append((f"picker forward of the scored stretch only (forward_range, samples "
                         f"{rg['start']}-{rg['stop']} of 3,001: stride {rg['stride_s']:g} s), "
                         f"B = 64, {rg['precision']}, 1 thread (windows/s)",
                         _fmt(rg["windows_per_s"]), f"whole window, same precision: "
                         f"{_fmt(whole)}", f"{ratio(rg['windows_per_s'], whole)}×"))
    fl = res.get("floors", {})
    deployment = fl.get("throughput_deployment", "one process")
    names = {"throughput_vs_seisbench_streaming_ge_1.2":
             "streaming throughput ≥ 1.2× SeisBench annotate streaming (same network, same "
             f"precision; median of the back-to-back pairs when measured; {deployment})",
             "throughput_vs_seisbench_whole_trace_ge_1.2":
             "also ≥ 1.2× whole-trace (offline) annotate",
             "realtime_stations_ge_5000": "≥ 5,000 stations in real time",
             "p99_le_100ms_at_500": "p99 ≤ 100 ms at 500 stations, stride 1 s",
             "rss_le_1.5GB_at_1000": "RSS ≤ 1.5 GB at 1,000 stations"}
    verdict = {True: "met", False: "not met", None: "not measured"}
    rows.append(("issue 6 floors", "; ".join(f"{names[k]}: {verdict[v]}" for k, v in fl.items()
                                             if k in names),
                 "", ""))
    out = [f"`{res['command']}` — {m['date']}, {m['cpus']} cores ({m['cpu_model']}), shared with "
           f"other work (load average {m['loadavg_start'][0]:.1f} at start, "
           f"{m['loadavg_end'][0]:.1f} at end), torch {m['torch']}, the service's default "
           f"{m['service_workers']} inference workers × {m['torch_threads_per_worker']} thread, "
           f"models at {m.get('precision', 'fp32')} (`inference.precision = \"auto\"`); "
           f"median (min–max) of {res['plan']['repeats']} runs unless noted.", ""]
    for i, r in enumerate(rows):
        out.append("| " + " | ".join(r) + " |")
        if i == 0:
            out.append("| --- | --- | --- | --- |")
    return "\n".join(out) + "\n"


def latency_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Added latency per alert: to the sink at each N, then to the Kafka ack (``--kafka``)."""
    rows: list[tuple[str, str, str, str]] = []
    for n, lat in res["latency"].items():
        up = lat["kept_up"]
        speed = "real time" if lat["speed"] == 1 else f"{lat['speed']:g}× real time"
        rows.append((f"added latency to sink, N = {n}, picker stride 1 s, paced at {speed} "
                     f"(ms; alerts/run {lat['alerts_per_run']})",
                     f"p50 {_fmt(lat['p50_ms'])} · p95 {_fmt(lat['p95_ms'])} · p99 {_fmt(lat['p99_ms'])}",
                     f"every window, arrival → inference result: p50 "
                     f"{_fmt(lat['window_to_result_p50_ms'])} · p99 "
                     f"{_fmt(lat['window_to_result_p99_ms'])}; kept up {sum(up)}/{len(up)} runs "
                     f"(source lag p99 {_fmt(lat['source_lag_p99_s'], 2)} s); windows shed "
                     f"{lat.get('windows_shed')}",
                     "floor p99 ≤ 100 ms at 500"))
    kafka = res.get("latency_kafka")
    for n, kl in (kafka or {}).get("by_stations", {}).items():
        rows.append((f"added latency to Kafka ack, N = {n}, same setup (ms; alerts/run "
                     f"{kl['alerts_per_run']})",
                     f"p50 {_fmt(kl['acked_p50_ms'])} · p95 {_fmt(kl['acked_p95_ms'])} · "
                     f"p99 {_fmt(kl['acked_p99_ms'])}",
                     f"handed to the Kafka sink: p99 {_fmt(kl['p99_ms'])}; kept up "
                     f"{sum(kl['kept_up'])}/{len(kl['kept_up'])} runs", ""))
    if kafka and "skipped" in kafka:
        rows.append(("added latency to Kafka ack", "skipped", kafka["skipped"][:120], ""))
    return rows


def figures(res: dict[str, Any], out_dir: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return []
    made = []
    tp, ref = res["throughput"], res["references"]
    bars = [("geosentry picker\n(1 process)", tp["picker"]["station_seconds_per_s"])]
    if "picker_scaleout" in tp:
        bars.append((f"geosentry picker\n({tp['picker_scaleout']['processes']} processes)",
                     tp["picker_scaleout"]["station_seconds_per_s"]))
    for key, label in (("seisbench_streaming_same_net", "SeisBench annotate\nstreaming (same net)"),
                       ("seisbench_annotate_same_net", "SeisBench annotate\nwhole trace (same net)"),
                       ("seisbench_annotate_phasenet", "SeisBench annotate\n(its PhaseNet)")):
        if key in ref:
            bars.append((label, ref[key]["station_seconds_per_s"]))
    bars += [("geosentry STA/LTA", tp["stalta"]["station_seconds_per_s"]),
             ("ObsPy STA/LTA", ref["obspy_stalta"]["station_seconds_per_s"])]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    med = [b[1]["median"] for b in bars]
    err = [[b[1]["median"] - b[1]["min"] for b in bars], [b[1]["max"] - b[1]["median"] for b in bars]]
    ax.bar([b[0] for b in bars], med, yerr=err, capsize=4, color="#4477aa")
    ax.set_yscale("log")
    ax.set_ylabel("station-seconds / s")
    ax.set_title(f"Throughput ({res['machine']['cpus']} cores, median, min–max)")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    p = out_dir / "latest_throughput.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    made.append(p.name)
    lat = {n: v for n, v in res["latency"].items() if v["p50_ms"]["median"] is not None}
    if lat:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for i, q in enumerate(("p50_ms", "p95_ms", "p99_ms")):
            xs = [i + 4 * k for k in range(len(lat))]
            st = [v[q] for v in lat.values()]
            ax.bar(xs, [s["median"] for s in st], label=q[:3],
                   yerr=[[s["median"] - s["min"] for s in st], [s["max"] - s["median"] for s in st]],
                   capsize=3)
        ax.set_xticks([1 + 4 * k for k in range(len(lat))], [f"N = {n}" for n in lat])
        ax.axhline(100, color="grey", ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_ylabel("newest sample arrival → sink (ms)")
        ax.set_title("Alert latency, picker stride 1 s, paced (median, min–max)")
        ax.legend()
        fig.tight_layout()
        p = out_dir / "latest_latency.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p.name)
    return made


def floors(res: dict[str, Any]) -> dict[str, Any]:
    ref, tp = res["references"], res["throughput"]
    from bench.sections import best_deployment

    ours = best_deployment(tp, "picker")[1]["station_seconds_per_s"]
    sb = ref.get("seisbench_annotate_same_net")
    sbs = ref.get("seisbench_streaming_same_net")
    r = ratio(ours, sb["station_seconds_per_s"]) if sb else None
    rs = ratio(ours, sbs["station_seconds_per_s"]) if sbs else None
    pr = ref.get("paired")
    deployment = "one process"
    if pr:  # back-to-back pairs (service defaults): the machine's drift cancels
        rs = pr["ratio_vs_streaming"]["median"]
        r = pr["ratio_vs_whole_trace"]["median"]
        scaled = pr.get("service_scaleout")
        if scaled:
            procs = f"{pr['scaleout_processes']} processes"
            deployment = f"one process, faster than {procs}"
            if (scaled["median"] or 0) > (pr["service_default"]["median"] or 0):
                deployment = f"{procs}, faster than one"
                rs = pr["ratio_scaleout_vs_streaming"]["median"]
                r = pr["ratio_scaleout_vs_whole_trace"]["median"]
    lat = res["latency"].get("500")
    rss1000 = res["rss"]["by_stations"].get("1000")
    cap = res["capacity"]
    check = cap.get("check")
    realtime = (cap["estimate_stations"] or 0) >= 5000 and (check is None or (
        check["kept_up"] and check["stations"] >= 5000))  # the last check is the first kept up
    latency_ok = None if lat is None else ((lat["p99_ms"]["median"] or 1e9) <= 100
                                           and all(lat["kept_up"]))
    return {
        "throughput_vs_seisbench_streaming_ge_1.2": None if rs is None else rs >= 1.2,
        "throughput_vs_seisbench_whole_trace_ge_1.2": None if r is None else r >= 1.2,
        "realtime_stations_ge_5000": realtime,
        "p99_le_100ms_at_500": latency_ok,
        "rss_le_1.5GB_at_1000": None if rss1000 is None else rss1000["rss_peak_mb"]["median"] <= 1536,
        "throughput_deployment": deployment,
    }
