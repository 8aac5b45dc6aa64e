"""The drift suite's results as README-ready markdown tables (and JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autolabel.tools.stream_metrics import (
    BAR_BACK_REVIEWS,
    BAR_ORACLE_RATIO,
    BAR_PRECISION,
    BAR_WINDOW,
    BAR_WRONG_BEFORE_STOP,
    MIN_WINDOW_ACCEPTED,
    WINDOW,
)

BAR_COLUMNS = (
    ("precision", f"precision ≥ {BAR_PRECISION}"),
    ("orders_below_target", "orders below target ≤ δ"),
    ("worst_window", f"worst window ≥ {BAR_WINDOW}"),
    ("wrong_before_stop", f"≤ {BAR_WRONG_BEFORE_STOP} wrong after swap"),
    ("back_within_reviews", f"back ≤ {BAR_BACK_REVIEWS:,} reviews"),
    ("automation_vs_oracle", f"≥ {BAR_ORACLE_RATIO}x oracle"),
    ("no_false_alarm", "no false alarm"),
)


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _int(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _mark(ok: bool | None) -> str:
    return "—" if ok is None else ("✓" if ok else "✗")


def markdown(result: dict[str, Any]) -> str:
    """Every table of a suite result (the JSON form), as markdown."""
    s = result["settings"]
    streams = result["streams"]
    lines = [
        f"## Drift suite, variant {result['variant']}"
        + (f" (scale {result['scale']})" if result["scale"] != 1 else ""),
        "",
        f"Target {s['target_precision']}, delta {s['delta']}, audit rate {s['audit_rate']},"
        f" model `{s['model']}`; each stream replayed as generated, then in"
        f" {result['orders']} shuffled orders (stationary streams) or"
        f" {result['segment_orders']} orders shuffled within segments (abrupt and covariate"
        f" shift); {result['seconds']:.0f} s in all. Worst window: the lowest precision of"
        f" auto-labels over any {WINDOW} consecutive records holding"
        f" ≥ {MIN_WINDOW_ACCEPTED} auto-labels.",
        "",
        "| stream (records) | kind, changes at | precision | worst window | automation"
        " | oracle | vs oracle | drift events (before any change) / promotions"
        " | flagged classes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in streams:
        run = e["run"]
        worst = run["worst_window"]
        flags = ", ".join(
            f"{f['class']} {f['flag'].replace('_', ' ')}" for f in run["per_class"]["flags"]
        )
        points = ", ".join(f"{c:,}" for c in e["change_points"]) or "—"
        lines.append(
            f"| {e['name']} ({e['rows']:,}) | {e['kind']}, {points} |"
            f" {pct(run['auto_precision'])} | {pct(None if worst is None else worst['precision'])}"
            f" | {pct(run['automation_rate'])} | {pct(run['oracle']['automation_rate'])} |"
            f" {_num(run['oracle_ratio'])} | {run['drift_events']}"
            f" ({run['drift_events_before_change']}) / {run['promotions']} |"
            f" {flags or '—'} |"
        )
    lines += [
        "",
        "**At each change** (generated order): wrong auto-labels from the change until"
        " acceptance stopped (of those auto-accepted), when it stopped and when the first"
        " drift event came, how many records and reviews until acceptance was back, and the"
        " segment after the change.",
        "",
        "| stream | change at | wrong before stop | stopped after | drift event after"
        " | back after records / reviews | segment automation / precision"
        " | its last fifth |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in streams:
        for c in e["run"]["changes"]:
            seg, tail = c["segment"], c["segment_last_fifth"]
            event = c["first_drift_event"]
            detected = "—" if event is None else f"{event - c['at']:,}"
            back = (
                "never"
                if c["back_at"] is None and c["stop_at"] is not None
                else f"{_int(c['back_after_records'])} / {_int(c['back_after_reviews'])}"
            )
            lines.append(
                f"| {e['name']} | {c['at']:,} |"
                f" {c['wrong_before_stop']} of {c['accepted_before_stop']} |"
                f" {_int(c['stopped_after'])} |"
                f" {detected} | {back} |"
                f" {pct(seg['automation_rate'])} / {pct(seg['auto_precision'])} |"
                f" {pct(tail['automation_rate'])} / {pct(tail['auto_precision'])} |"
            )
    ordered = [e for e in streams if e["orders"]]
    if ordered:
        lines += [
            "",
            "**Shuffled orders**: how often realized precision was below target (with its"
            " 95% Clopper-Pearson interval), and the spread of precision and automation.",
            "",
            "| stream | orders | below target | precision min / median / mean"
            " | automation min / median / mean | worst window median"
            " | wrong before stop median / max | never back |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in ordered:
            o = e["orders"]
            p, a = o["auto_precision"], o["automation_rate"]
            lo, hi = o["below_target_interval"]
            first = o.get("first_change")
            wrong = (
                f"{_int(first['wrong_before_stop']['median'])} /"
                f" {_int(first['wrong_before_stop']['max'])}"
                if first
                else "—"
            )
            lines.append(
                f"| {e['name']} | {o['orders']} ({o['shuffled']}) |"
                f" {o['below_target']} ({pct(o['below_target_share'], 0)},"
                f" {pct(lo, 0)}-{pct(hi, 0)}) |"
                f" {pct(p['min'])} / {pct(p['median'])} / {pct(p['mean'])} |"
                f" {pct(a['min'])} / {pct(a['median'])} / {pct(a['mean'])} |"
                f" {pct(o['worst_window']['median'])} | {wrong} |"
                f" {first['never_back'] if first else '—'} |"
            )
    lines += [
        "",
        '**Bars** (issue 7, "Done when"; — where a bar does not apply or nothing was accepted):',
        "",
        "| stream | " + " | ".join(title for _, title in BAR_COLUMNS) + " |",
        "|---|" + "---|" * len(BAR_COLUMNS),
    ]
    met = applicable = 0
    for e in streams:
        marks = [e["bars"][key] for key, _ in BAR_COLUMNS]
        met += sum(m is True for m in marks)
        applicable += sum(m is not None for m in marks)
        in_orders = e.get("bars_in_orders", {})
        cells = []
        for (key, _), mark in zip(BAR_COLUMNS, marks, strict=True):
            count = in_orders.get(key)
            failed = (
                f" (✗ {count['failed']}/{count['judged']})" if count and count["failed"] else ""
            )
            cells.append(_mark(mark) + failed)
        lines.append(f"| {e['name']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"{met} of {applicable} applicable bars met in the generated order; (✗ k/n): the"
        " bar failed in k of the n shuffled orders where it was judged.",
        "",
    ]
    return "\n".join(lines)


def write(result: dict[str, Any], out: Path, stem: str) -> tuple[Path, Path]:
    """``stem.json`` and ``stem.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    md_path.write_text(markdown(result))
    return json_path, md_path
