# -*- test-case-name: tests.shipped.test_soak -*-
"""
The soak's result: exact counts per flow and per QoS, RSS after warm-up
(min, max, least-squares slope in KiB per minute), descriptors, log
errors, and the list of problems that make the run fail.

QoS 1 and 2 must deliver every acknowledged message to every receiver
(QoS 2 never twice); QoS 0 losses are counted on their own line (on
loopback, with the bounded windows, they too should be 0, and a QoS 0
loss is listed as a problem as well, but separately named).
"""

import os
import platform
import signal
import subprocess
import sys


def slope_per_minute(points):
    """Least-squares slope of ``[(seconds, value)]`` in value per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mx) * (v - my) for t, v in points) / var * 60


def _by_qos(flows):
    out = {q: {"flows": [], "sent": 0, "acknowledged": 0, "expected": 0, "received": 0,
               "lost": 0, "duplicated": 0} for q in (0, 1, 2)}
    for name, flow in flows.items():
        entry = out[flow["qos"]]
        entry["flows"].append(name)
        entry["sent"] += flow["sent"]
        entry["acknowledged"] += flow["acknowledged"] or 0
        for receiver in flow["receivers"].values():
            entry["expected"] += receiver["expected"]
            entry["received"] += receiver["received"]
            entry["lost"] += receiver["lost"]
            entry["duplicated"] += receiver["duplicated"]
    out[0]["acknowledged"] = None
    return {f"qos{q}": v for q, v in out.items()}


def _persistent(flows, names):
    out = {"expected": 0, "received": 0, "lost": 0, "duplicated_qos2": 0}
    for flow in flows.values():
        for receiver, counts in flow["receivers"].items():
            if receiver in names:
                out["expected"] += counts["expected"]
                out["received"] += counts["received"]
                out["lost"] += counts["lost"]
                if flow["qos"] == 2:
                    out["duplicated_qos2"] += counts["duplicated"]
    return out


def git(root, *args):
    """``git args`` in ``root``; its output."""
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                          check=False).stdout.strip()


def report(args, soak, broker, outcome, exit_code, started):
    flows = {name.decode(): ledger.report() for name, ledger in soak.router.flows.items()}
    by_qos = _by_qos(flows)
    persistent_names = {c.key for c in soak.persistent + soak.paho_subs}
    during = [s for s in soak.samples if s["phase"] == "load"]
    warm = [s for s in during if s["t"] >= args.warmup] or during
    rss = [s["rss_kib"] for s in warm]
    fds = [s["fds"] for s in during]
    sessions = dict(soak.stats["sessions"])
    sessions["raw_clients"] = len(soak.persistent)
    sessions["paho_clients"] = len(persistent_names) - len(soak.persistent)
    sessions["cycles"] = sum(c.cycles for c in soak.persistent + soak.paho_subs)
    sessions.update(_persistent(flows, persistent_names))
    churn = dict(soak.stats["churn"])
    churn["failure_kinds"] = soak.churn.failures
    problems = []
    for name, flow in flows.items():
        for receiver, counts in flow["receivers"].items():
            if flow["qos"] and counts["lost"]:
                problems.append(f"{name} -> {receiver}: {counts['lost']} acknowledged "
                                "messages lost")
            if not flow["qos"] and counts["lost"]:
                problems.append(f"QoS 0 {name} -> {receiver}: {counts['lost']} lost")
            if flow["qos"] == 2 and counts["duplicated"]:
                problems.append(f"{name} -> {receiver}: {counts['duplicated']} QoS 2 "
                                "messages more than once")
        if flow["bogus"] or flow["refused"]:
            problems.append(f"{name}: {flow['bogus']} bogus, {flow['refused']} refused")
    if soak.router.unexpected:
        problems.append(f"misrouted: {soak.router.unexpected}")
    if sessions.get("session_not_present"):
        problems.append(f"{sessions['session_not_present']} reconnects without the session")
    if churn.get("failures"):
        problems.append(f"churn failures: {soak.churn.failures}")
    if soak.stats["rest"].get("failures"):
        problems.append(f"REST failures: {soak.stats['rest']}")
    if broker.log["errors"]:
        problems.append(f"{broker.log['errors']} error lines in the broker log")
    if soak.stats.get("broker_died"):
        problems.append("the broker died")
    # twistd ends by re-raising the signal that stopped it: -15 is a clean stop.
    if exit_code not in (0, -signal.SIGTERM) or not broker.shut_down:
        problems.append(f"broker exit status {exit_code} after SIGTERM "
                        f"(shut down: {broker.shut_down})")
    if not outcome["drained"]:
        problems.append("not drained")
    if outcome["fds_after_clients_left"] != broker.fds_baseline:
        problems.append(f"fds after the clients left: {outcome['fds_after_clients_left']}, "
                        f"baseline {broker.fds_baseline}")
    rss_figures = {
        "warmup_s": args.warmup, "samples": len(rss), "start_kib": broker.rss_start,
        "min_kib": min(rss), "max_kib": max(rss), "first_kib": rss[0], "last_kib": rss[-1],
        "slope_kib_per_min": round(slope_per_minute([(s["t"], s["rss_kib"]) for s in warm]), 1),
    }
    fd_figures = {"baseline": broker.fds_baseline, "min": min(fds), "max": max(fds),
                  "after_clients_left": outcome["fds_after_clients_left"]}
    gen, bro = outcome["generator_cpu_s"], outcome["broker_cpu_s"]
    result = {
        "date": started.date().isoformat(), "started": started.isoformat(timespec="seconds"),
        "commit": soak.commit, "dirty": soak.dirty,
        "python": sys.version.split()[0], "machine": {
            "cpus": os.cpu_count(), "platform": platform.platform(),
            "loadavg_end": os.getloadavg(), "nice": os.nice(0)},
        "note": args.note,
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "ok": not problems, "problems": problems,
        **outcome,
        "cpu": {"generator_s": gen, "broker_s": bro,
                "generator_over_broker": round(gen / bro, 2) if bro else None},
        "rss": rss_figures, "fds": fd_figures,
        "log": broker.log, "broker_exit_code": exit_code, "broker_shut_down": broker.shut_down,
        "by_qos": by_qos, "persistent_sessions": sessions, "churn": churn,
        "retained": {"topics": soak.retained.count, "published": soak.retained.published},
        "rest": soak.stats["rest"], "flows": flows, "samples": soak.samples,
    }
    result["summary_text"] = summary(result)
    return result


def summary(r):
    lines = [
        f"soak {r['load_seconds']:.0f} s of load + {r['drain_seconds']:.0f} s drain, "
        f"{r['args']['clients']} churn slots: {'OK' if r['ok'] else 'FAILED'}",
        "RSS after {warmup_s:.0f} s warm-up: min {min_kib} KiB, max {max_kib} KiB, "
        "slope {slope_kib_per_min} KiB/min ({samples} samples; {start_kib} KiB at start)"
        .format(**r["rss"]),
        "fds: baseline {baseline}, min {min}, max {max}, after the clients left "
        "{after_clients_left}".format(**r["fds"]),
        f"log: {r['log']['errors']} error lines, {r['log']['tracebacks']} tracebacks, "
        f"{r['log']['warnings']} warnings",
        f"CPU: generator {r['cpu']['generator_s']} s, broker {r['cpu']['broker_s']} s "
        f"(ratio {r['cpu']['generator_over_broker']})",
    ]
    for name, q in r["by_qos"].items():
        lines.append(f"{name}: sent {q['sent']}, acknowledged {q['acknowledged']}, expected "
                     f"{q['expected']}, received {q['received']}, lost {q['lost']}, "
                     f"duplicated {q['duplicated']}")
    s = r["persistent_sessions"]
    lines.append(f"persistent sessions: {s['raw_clients']} raw + {s['paho_clients']} paho, "
                 f"{s['cycles']} offline/online cycles, expected {s['expected']}, "
                 f"received {s['received']}, lost {s['lost']}")
    c = r["churn"]
    lines.append(f"churn: {c.get('connects', 0)} connects ({c.get('ws_connects', 0)} WebSocket), "
                 f"peak {c.get('peak_connected', 0)} at once, {c.get('dropped', 0)} dropped, "
                 f"retained checks {c.get('retained_checks_ok', 0)} ok / "
                 f"{c.get('retained_checks_failed', 0)} failed, failures {c.get('failures', 0)}")
    lines.append(f"REST: {r['rest']}")
    lines.extend(f"PROBLEM: {p}" for p in r["problems"])
    return "\n".join(lines)
