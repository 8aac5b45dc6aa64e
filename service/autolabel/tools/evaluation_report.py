"""Showing an evaluation: a rich table on the terminal, JSON, and a PNG plot."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from autolabel.extras import PLOTS, require
from autolabel.tools.evaluation import StreamRun, rolling
from autolabel.tools.stream_metrics import MIN_WINDOW_ACCEPTED, WINDOW


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    target = report["target_precision"]
    table = Table(title=f"autolabel evaluate — {report['n_records']} records, target {target}")
    table.add_column("policy")
    table.add_column("automation", justify="right")
    table.add_column("precision of auto-labels", justify="right")
    table.add_column("meets target", justify="center")
    rows = [
        ("certified (autolabel)", report["automation_rate"], report["auto_precision"]),
        ("fixed 0.9", *_pair(report["baselines"]["fixed_0.9"])),
        ("oracle (hindsight)", *_pair(report["baselines"]["oracle"])),
    ]
    for name, automation, precision in rows:
        ok = "—" if precision is None else ("yes" if precision >= target else "NO")
        table.add_row(name, _pct(automation), _pct(precision), ok)
    console.print(table)
    ratio = report.get("oracle_ratio")
    console.print(
        f"automation vs oracle: {'—' if ratio is None else f'{ratio:.2f}'}   "
        f"final accuracy (all records, human labels as given): {_pct(report['final_accuracy'])}"
    )
    reviews = ", ".join(f"{k} {v}" for k, v in sorted(report["reviews"].items()))
    console.print(f"review requests: {reviews or 'none'}")
    if report["drift_events_at"]:
        console.print(
            f"drift detected at records {report['drift_events_at'][:10]}; "
            f"model replaced at {report['model_promotions_at'][:10] or 'never'}"
        )
    if "after_drift" in report:
        after, last = report["after_drift"], report["last_fifth"]
        fixed_after = report["baselines"]["fixed_0.9"]["after_drift"]
        console.print(
            f"after the drift: automation {_pct(after['automation_rate'])}, precision"
            f" {_pct(after['auto_precision'])} (fixed 0.9: {_pct(fixed_after['auto_precision'])});"
            f" last fifth: automation {_pct(last['automation_rate'])},"
            f" precision {_pct(last['auto_precision'])}"
        )


def print_stream(stream: dict[str, Any], console: Console) -> None:
    """The stream measures of a run: worst window, each change, per class."""
    worst = stream["worst_window"]
    console.print(
        "worst 500-record window of auto-labels: "
        + (
            "— (no window with enough auto-labels)"
            if worst is None
            else f"{_pct(worst['precision'])} at records {worst['start']}-{worst['stop']}"
            f" ({worst['accepted']} auto-labels)"
        )
    )
    for change in stream["changes"]:
        console.print(describe_change(change))
    print_classes(stream["per_class"], console)


def describe_change(change: dict[str, Any]) -> str:
    """One line on how a run met a change."""
    at = change["at"]
    if change["stop_at"] is None:
        stop = f"acceptance never stopped before record {change['until']}"
    else:
        stop = f"acceptance stopped {change['stopped_after']} records after it"
    if change["back_at"] is not None:
        back = (
            f"back {change['back_after_records']} records"
            f" ({change['back_after_reviews']} reviews) after the stop"
        )
    elif change["stop_at"] is not None:
        back = "not back before the segment ended"
    else:
        back = ""
    event = change["first_drift_event"]
    detected = "no drift event" if event is None else f"first drift event {event - at} after"
    seg, tail = change["segment"], change["segment_last_fifth"]
    return (
        f"change at {at}: {change['wrong_before_stop']} wrong of"
        f" {change['accepted_before_stop']} auto-labels before {stop}; {back}"
        f"{'; ' if back else ''}{detected}; segment automation"
        f" {_pct(seg['automation_rate'])} at {_pct(seg['auto_precision'])}, last fifth"
        f" {_pct(tail['automation_rate'])} at {_pct(tail['auto_precision'])}"
    )


def print_classes(per_class: dict[str, Any], console: Console) -> None:
    table = Table(
        title="per class: records, auto-labels (by predicted label), their share of all"
        " auto-labels, precision, recall"
    )
    for name, justify in (
        ("class", "left"),
        ("n", "right"),
        ("share", "right"),
        ("auto", "right"),
        ("of auto", "right"),
        ("prec.", "right"),
        ("recall", "right"),
        ("reviewed", "right"),
        ("flag", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in per_class["classes"]:
        table.add_row(
            row["class"],
            str(row["records"]),
            _pct(row["share"]),
            str(row["auto_labels"]),
            _pct(row["auto_share"]),
            _pct(row["precision"]),
            _pct(row["recall"]),
            str(row["reviewed"]),
            ", ".join(row["flags"]),
        )
    console.print(table)


def print_orders(orders: dict[str, Any], target: float, console: Console) -> None:
    lo, hi = orders["below_target_interval"]
    p, a = orders["auto_precision"], orders["automation_rate"]
    console.print(
        f"{orders['orders']} shuffled orders ({orders['shuffled']}): below target"
        f" {target} in {orders['below_target']} ({_pct(orders['below_target_share'])},"
        f" 95% interval {_pct(lo)}-{_pct(hi)}); nothing accepted in"
        f" {orders['no_acceptance']}\n"
        f"  precision min {_pct(p['min'])}, median {_pct(p['median'])}, mean"
        f" {_pct(p['mean'])}; automation min {_pct(a['min'])}, median {_pct(a['median'])},"
        f" mean {_pct(a['mean'])}"
    )


def _pair(entry: dict[str, Any]) -> tuple[float | None, float | None]:
    return entry.get("automation_rate"), entry.get("auto_precision")


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def write_trace(run: StreamRun, path: Path) -> None:
    """Every record's decision as CSV: index, id, truth, predicted, confidence, accepted,
    reason, model version, threshold (``inf``: nothing could be accepted), accepting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRACE_COLUMNS)
        for i in range(len(run.truth)):
            confidence = run.confidence[i]
            threshold = run.threshold[i] if i < len(run.threshold) else None
            writer.writerow(
                [
                    i,
                    run.ids[i] if i < len(run.ids) else "",
                    run.truth[i],
                    run.predicted[i] or "",
                    "" if confidence is None else f"{confidence:.6f}",
                    int(run.accepted[i]),
                    run.reason[i],
                    run.model_version[i] if i < len(run.model_version) else "",
                    "" if threshold is None else f"{threshold:.6f}",
                    int(run.accepting[i]) if i < len(run.accepting) else "",
                ]
            )


TRACE_COLUMNS = (
    "index",
    "id",
    "truth",
    "predicted",
    "confidence",
    "accepted",
    "reason",
    "model_version",
    "threshold",
    "accepting",
)


def plot(run: StreamRun, report: dict[str, Any], path: Path, window: int = WINDOW) -> None:
    """``autolabel evaluate``'s plot of its main run (see :func:`plot_run`)."""
    plot_run(
        run,
        path,
        target_precision=report["target_precision"],
        change_points=report.get("change_points", ()),
        title=(
            f"automation {_pct(report['automation_rate'])}, precision"
            f" {_pct(report['auto_precision'])} (target {report['target_precision']})"
        ),
        window=window,
    )


def plot_run(
    run: StreamRun,
    path: Path,
    *,
    target_precision: float,
    change_points: Sequence[int] = (),
    gradual: bool = False,
    title: str = "",
    window: int = WINDOW,
) -> None:
    """Windowed automation and precision of auto-labels, and the threshold in force,
    over the stream; the true change points (black, dashed; a gradual drift shaded from
    its start), drift events (orange) and model promotions (green) marked."""
    matplotlib = require(PLOTS)  # an extra: not in the container image
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    automation, precision = rolling(run, window, MIN_WINDOW_ACCEPTED)
    x = list(range(1, len(automation) + 1))
    fig, (top, middle, bottom) = plt.subplots(
        3, 1, figsize=(10, 7), sharex=True, gridspec_kw={"height_ratios": [2, 2, 1]}
    )
    top.plot(x, automation, color="tab:blue", linewidth=1)
    top.set_ylabel(f"automation\n(last {window})")
    top.set_ylim(0, 1.02)
    middle.plot(
        x, [p if p is not None else float("nan") for p in precision], color="tab:green", lw=1
    )
    middle.axhline(target_precision, color="tab:red", linestyle="--", label="target")
    middle.set_ylabel(
        f"precision of\nauto-labels (last {window},\n≥ {MIN_WINDOW_ACCEPTED} of them)"
    )
    lowest = min((p for p in precision if p is not None), default=1.0)
    middle.set_ylim(max(0.0, min(target_precision - 0.35, lowest - 0.02)), 1.005)
    thresholds = [t if t is not None and math.isfinite(t) else float("nan") for t in run.threshold]
    if thresholds:
        bottom.plot(range(1, len(thresholds) + 1), thresholds, color="tab:gray", lw=1)
    bottom.set_ylabel("threshold")
    bottom.set_ylim(0, 1.02)
    bottom.set_xlabel("record")
    for axis in (top, middle, bottom):
        for at in change_points:
            axis.axvline(at, color="black", linestyle="--", alpha=0.8)
        if gradual and change_points:
            axis.axvspan(change_points[0], len(x), color="black", alpha=0.06)
        for at in run.drift_at:
            axis.axvline(at, color="tab:orange", alpha=0.6)
        for at in run.promoted_at:
            axis.axvline(at, color="tab:green", alpha=0.6, linestyle=":")
    middle.legend(loc="lower right")
    fig.suptitle(
        f"{title}\nblack dashed: true change; orange: drift detected; green dotted: model promoted",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
