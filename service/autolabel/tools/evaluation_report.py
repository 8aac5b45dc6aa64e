"""Showing an evaluation: a rich table on the terminal, JSON, and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from autolabel.tools.evaluation import StreamRun, rolling


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


def _pair(entry: dict[str, Any]) -> tuple[float | None, float | None]:
    return entry.get("automation_rate"), entry.get("auto_precision")


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def plot(run: StreamRun, report: dict[str, Any], path: Path, window: int = 200) -> None:
    """Automation and auto-label precision over the stream, drift events marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    automation, precision = rolling(run, window)
    x = list(range(1, len(automation) + 1))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(x, automation, color="tab:blue")
    top.set_ylabel(f"automation\n(last {window})")
    top.set_ylim(0, 1.02)
    bottom.plot(x, [p if p is not None else float("nan") for p in precision], color="tab:green")
    bottom.axhline(report["target_precision"], color="tab:red", linestyle="--", label="target")
    bottom.set_ylabel(f"precision of\nauto-labels (last {window})")
    bottom.set_xlabel("record")
    bottom.set_ylim(max(0.0, report["target_precision"] - 0.25), 1.005)
    for axis in (top, bottom):
        for at in report["drift_events_at"]:
            axis.axvline(at, color="tab:orange", alpha=0.6)
    bottom.legend(loc="lower right")
    fig.suptitle(
        f"automation {_pct(report['automation_rate'])}, precision {_pct(report['auto_precision'])}"
        f" (target {report['target_precision']}); orange: drift detected"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
