"""Reading our records: per-resource outcomes and human-sized numbers.

The API spreads a resource's fate over three places (``resources_status``,
``resources_reason`` and, once ended, ``summary.resources``); the waiting and describing
code wants one list, and the same byte/duration wording everywhere.
"""

from __future__ import annotations

from typing import Any

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(value: float | None) -> str:
    if value is None:
        return "?"
    value = float(value)
    for unit in UNITS:
        if abs(value) < 1024 or unit == UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {UNITS[-1]}"  # pragma: no cover


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def resources(record: dict) -> list[dict[str, Any]]:
    """Every resource the record knows about: ``{"resource", "status", "reason"}``."""
    out: dict[str, dict[str, Any]] = {}
    summary = (record.get("summary") or {}).get("resources") or {}
    for key, value in summary.items():
        if isinstance(value, dict):
            out[key] = {"resource": key, "status": value.get("status"),
                        "reason": value.get("reason")}
    for key, status in (record.get("resources_status") or {}).items():
        out.setdefault(key, {"resource": key, "status": None, "reason": None})
        out[key]["status"] = status
    for key, reason in (record.get("resources_reason") or {}).items():
        out.setdefault(key, {"resource": key, "status": None, "reason": None})
        if reason:
            out[key]["reason"] = reason
    return [out[k] for k in sorted(out)]


def reasons(record: dict) -> list[str]:
    """Why it failed, one line each: the record's own reason (unless it only repeats a
    resource's), then each resource's."""
    own = " ".join(str(record.get("reason") or "").split())
    lines = []
    for item in resources(record):
        if item["reason"]:
            reason = " ".join(str(item["reason"]).split())
            lines.append(f"{item['resource']}: {item['status'] or 'error'}: {reason}")
            if reason in own and len(own) - len(reason) < 120:
                own = ""  # the summary only repeats this resource's reason
    return ([own] if own else []) + lines


def progress_text(progress: dict | None) -> str:
    """``1/3 resources, 1.0 GiB/2.0 GiB, 120.0 MiB/s, ETA 12s``: what is known, nothing else."""
    if not progress:
        return ""
    parts = []
    res = progress.get("resources") or {}
    if res.get("total"):
        text = f"{res.get('done', 0)}/{res['total']} resources"
        if res.get("failed"):
            text += f" ({res['failed']} failed)"
        parts.append(text)
    data = progress.get("bytes") or {}
    if data.get("done") is not None or data.get("total") is not None:
        done = human_bytes(data.get("done") or 0)
        parts.append(f"{done}/{human_bytes(data['total'])}" if data.get("total") else done)
    files = progress.get("files") or {}
    if files.get("done") is not None and (files.get("done") or files.get("total")):
        parts.append(f"{files['done']}/{files['total']} files" if files.get("total")
                     else f"{files['done']} files")
    if progress.get("rate_bytes_per_second"):
        parts.append(f"{human_bytes(progress['rate_bytes_per_second'])}/s")
    if progress.get("eta_seconds") is not None:
        parts.append(f"ETA {human_duration(progress['eta_seconds'])}")
    return ", ".join(parts)


def summary_text(summary: dict | None) -> str:
    """``3s, 300.0 MiB read, 300.1 MiB added, dedup 1.00x``."""
    if not summary:
        return ""
    parts = []
    if summary.get("duration_seconds") is not None:
        parts.append(f"{summary['duration_seconds']:.1f}s")
    if summary.get("logical_bytes") is not None:
        parts.append(f"{human_bytes(summary['logical_bytes'])} read")
    if summary.get("bytes_added") is not None:
        parts.append(f"{human_bytes(summary['bytes_added'])} added")
    if summary.get("dedup_ratio"):
        parts.append(f"dedup {summary['dedup_ratio']:.2f}x")
    if summary.get("compression_ratio"):
        parts.append(f"compression {summary['compression_ratio']:.2f}x")
    return ", ".join(parts)
