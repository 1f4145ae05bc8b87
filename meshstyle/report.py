"""A batch's reports: ``OUT/report.json`` (strict JSON) and ``OUT/report.html`` (one page).

A run with ``--shard K/N`` writes its own ``report-shard-K-of-N.json`` and then rebuilds
``report.json`` and ``report.html`` from every shard report of the same N found in OUT, so
shards run one after another or side by side into one OUT never overwrite each other's.

A report describes one run: its jobs (a job found complete is listed as skipped) and its
settings. Results other runs left in OUT are not listed; their folders hold their markers.

meshstyle replaces a report file only when it wrote it: ``report.json`` (and a shard report)
by its ``format`` field, the page by its generator meta tag; reports of versions before
either are recognised by what they always held. A user's file under one of these names
stops the run before any job starts (:func:`check_reports_replaceable`).

The page is self-contained: the sheets and turntables are linked relatively (the page can be
moved or served with OUT), the loss curves are inline SVG, and every string that came from
the user (file names, messages, settings) is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from urllib.parse import quote

from meshstyle.jobfolder import dumps, job_lock
from meshstyle.losslog import read_loss

REPORT_NAME = "report.json"
HTML_NAME = "report.html"
#: report.json's ``format``: tells meshstyle's reports from a user's file of the same name.
REPORT_FORMAT = "meshstyle-report/1"
#: In the page's head, for the same reason.
HTML_MARK = '<meta name="generator" content="meshstyle">'
#: How every page began before HTML_MARK was written.
_OLD_HTML_START = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n<title>meshstyle report: '
)


def shard_report_name(k: int, n: int) -> str:
    return f"report-shard-{k}-of-{n}.json"


def write_reports(
    out: Path, outcomes: list, settings_toml: str, shard: tuple[int, int] | None = None
) -> Path:
    """Write this run's report, the merged ``report.json`` and ``report.html``.

    Args:
        out: the output folder.
        outcomes: :class:`meshstyle.batch.JobOutcome` per job, in order.
        settings_toml: the resolved settings, as written beside every result.
        shard: (K, N) when the run was one shard of N.

    Returns:
        The path of ``report.json``.

    Raises:
        FileExistsError: a report file to be written is there and not meshstyle's; none is
            written then.
    """
    from meshstyle.fsutil import atomic_write_text

    report = _report([o.to_json() for o in outcomes], settings_toml)
    # one writer at a time, so that shards finishing together merge each other's reports
    with job_lock(out, REPORT_NAME, wait=True):
        # checked again: the user may have put a file there while the jobs ran
        check_reports_replaceable(out, shard)
        if shard is not None:
            report["shard"] = f"{shard[0]}/{shard[1]}"
            atomic_write_text(out / shard_report_name(*shard), dumps(report))
            report = merge_shard_reports(out, shard[1])
        atomic_write_text(out / REPORT_NAME, dumps(report))
        atomic_write_text(out / HTML_NAME, report_html(out, report))
    return out / REPORT_NAME


def _report(jobs: list[dict], settings_toml: str) -> dict:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    return {"format": REPORT_FORMAT, "jobs": jobs, "counts": counts, "settings": settings_toml}


# ---------------------------------------------------------------------------------------
# Whose report files
# ---------------------------------------------------------------------------------------


def report_paths(out: Path, shard: tuple[int, int] | None = None) -> list[Path]:
    """The files a run writes into ``out`` besides its jobs' folders."""
    names = [REPORT_NAME, HTML_NAME] + ([shard_report_name(*shard)] if shard else [])
    return [out / name for name in names]


def check_reports_replaceable(out: Path, shard: tuple[int, int] | None = None) -> None:
    """Refuse to run when a report file the run would write is there and not meshstyle's.

    Raises:
        FileExistsError: naming every such file.
    """
    foreign = [
        path
        for path in report_paths(out, shard)
        if (path.exists() or path.is_symlink()) and not written_by_meshstyle(path)
    ]
    if foreign:
        names = ", ".join(str(path) for path in foreign)
        them = "them" if len(foreign) > 1 else "it"
        raise FileExistsError(
            f"{names}: not written by meshstyle, which writes its report there and replaces "
            f"only reports it wrote; move {them} away or choose another -o"
        )


def written_by_meshstyle(path: Path) -> bool:
    """Whether ``path`` is a report or page meshstyle wrote (a link never is)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if path.suffix == ".json":
        try:
            return is_report(json.loads(text))
        except ValueError:
            return False
    return HTML_MARK in text[:2000] or text.startswith(_OLD_HTML_START)


def is_report(data) -> bool:
    """Whether parsed JSON is a report of meshstyle's, of this version or an earlier one."""
    if not isinstance(data, dict):
        return False
    if "format" in data:
        return str(data["format"]).startswith("meshstyle-report/")
    # every report before the format field had these three, so typed
    return (
        isinstance(data.get("jobs"), list)
        and isinstance(data.get("counts"), dict)
        and isinstance(data.get("settings"), str)
    )


def merge_shard_reports(out: Path, n: int) -> dict:
    """One report of the shard reports of N found in ``out``, jobs in their planned order.

    Shard K holds the jobs at positions K-1, K-1+N, ...; interleaving the shards' job lists
    gives the order of the whole run back. Shards not run yet are listed as missing.
    """
    shards: dict[int, dict] = {}
    for path in out.glob(f"report-shard-*-of-{n}.json"):
        match = re.fullmatch(rf"report-shard-(\d+)-of-{n}\.json", path.name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if match and is_report(data):
            shards[int(match[1])] = data
    lists = [shards[k]["jobs"] for k in sorted(shards)]
    jobs = [lst[i] for i in range(max(map(len, lists), default=0)) for lst in lists if i < len(lst)]
    settings = next((shards[k].get("settings", "") for k in sorted(shards)), "")
    merged = _report(jobs, settings)
    merged["shards"] = {f"{k}/{n}": shard_report_name(k, n) for k in sorted(shards)}
    merged["missing_shards"] = [f"{k}/{n}" for k in range(1, n + 1) if k not in shards]
    return merged


# ---------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 4px}
.counts span{margin-right:12px}
.job{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px;margin:12px 0}
.job h2{font-size:16px;margin:0 0 6px;word-break:break-all}
.status{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px}
.done{background:#2a7}.skipped{background:#48c}.failed{background:#c33}
.interrupted{background:#c80}
.meta{color:#555;word-break:break-all}
.media{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start;margin-top:8px}
.media img{border:1px solid #eee;image-rendering:pixelated}
.media img.sheet{width:100%;max-width:520px;min-width:320px}
.media img.turntable{width:160px}
pre.error{background:#fee;border:1px solid #f99;padding:8px;white-space:pre-wrap;
word-break:break-all}
svg.loss{background:#fff;border:1px solid #eee}
"""


def report_html(out: Path, report: dict) -> str:
    """The page of every job of ``report``: sheet, turntable, loss curve or error."""
    e = html.escape
    counts = report.get("counts", {})
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        HTML_MARK,
        f"<title>meshstyle report: {e(out.name or str(out))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>meshstyle report: {e(str(out))}</h1>",
        '<p class="counts">'
        + "".join(f"<span>{e(str(k))}: {e(str(v))}</span>" for k, v in counts.items())
        + f"<span>jobs: {len(report.get('jobs', []))}</span></p>",
    ]
    if report.get("missing_shards"):
        parts.append(
            f"<p>Shards not reported yet: {e(', '.join(map(str, report['missing_shards'])))}</p>"
        )
    for job in report.get("jobs", []):
        parts.append(_job_html(out, job))
    if report.get("settings"):
        parts.append(
            f"<details><summary>settings</summary><pre>{e(report['settings'])}</pre></details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _job_html(out: Path, job: dict) -> str:
    e = html.escape
    status = str(job.get("status", "?"))
    css = status if status in ("done", "skipped", "failed", "interrupted") else "failed"
    name = str(job.get("name", "?"))
    meta = [f"mesh {job.get('mesh')}"]
    if job.get("style"):
        meta.append(f"style {job.get('style')}")
    meta.append(f"{job.get('seconds', 0)} s")
    final = (job.get("losses") or {}).get("final") or {}
    if isinstance(final.get("loss"), int | float):
        meta.append(f"final loss {final['loss']:.4g}")
    lines = [
        f'<section class="job" id="{e(quote(name))}">',
        f'<h2>{e(name)} <span class="status {css}">{e(status)}</span></h2>',
        f'<div class="meta">{e(" · ".join(meta))}</div>',
    ]
    if job.get("error"):
        lines.append(f'<pre class="error">{e(str(job["error"]))}</pre>')
    outputs = job.get("outputs") or {}
    media = []
    for kind, css_class, alt in (
        ("sheet", "sheet", "before and after"),
        ("turntable", "turntable", "turntable"),
    ):
        file = _output_file(out, name, outputs.get(kind))
        if file:
            link = _link(out, file)
            media.append(
                f'<a href="{e(link)}"><img class="{css_class}" src="{e(link)}" '
                f'alt="{e(alt)}: {e(name)}"></a>'
            )
    loss_file = _output_file(out, name, outputs.get("losses"))
    losses = read_loss(loss_file) if loss_file else []
    if losses:
        media.append(loss_svg(losses))
    if media:
        lines.append('<div class="media">' + "".join(media) + "</div>")
    files = [
        f'<a href="{e(_link(out, file))}">{e(kind)}</a>'
        for kind, path in outputs.items()
        if (file := _output_file(out, name, path))
    ]
    if files:
        lines.append('<div class="meta">files: ' + " · ".join(files) + "</div>")
    lines.append("</section>")
    return "\n".join(lines)


def _output_file(out: Path, name: str, path) -> Path | None:
    """A job's output file as it lies in OUT now, or None when it is not there.

    Found by the job's folder and the file's name, not by the recorded path, which is
    relative to wherever the run that wrote it was started (shards may run from anywhere).
    Nothing outside OUT is ever linked.
    """
    if not isinstance(path, str) or not path:
        return None
    candidate = out / name / Path(path).name
    try:
        inside = candidate.resolve().is_relative_to(out.resolve())
    except OSError:
        return None
    return candidate if inside and candidate.is_file() else None


def _link(out: Path, file: Path) -> str:
    """A percent-encoded URL of ``file`` relative to OUT."""
    return "/".join(quote(part) for part in file.relative_to(out).parts)


def loss_svg(values: list[float], width: int = 320, height: int = 160) -> str:
    """An inline SVG line of the loss per step (log scale when it spans a decade or more).

    Non-finite and, on a log scale, non-positive values are left out of the line.
    """
    finite = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    log = bool(finite) and all(v > 0 for _, v in finite)
    if log and max(v for _, v in finite) / min(v for _, v in finite) < 10:
        log = False
    points = [(i, math.log10(v) if log else v) for i, v in finite]
    pad = 34
    svg = [
        f'<svg class="loss" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">',
        "<title>loss per step</title>",
    ]
    if points:
        lo = min(y for _, y in points)
        hi = max(y for _, y in points)
        span = hi - lo or 1.0
        steps = max(len(values) - 1, 1)

        def xy(i: int, y: float) -> str:
            x = pad + (width - pad - 8) * i / steps
            return f"{x:.1f},{height - 18 - (height - 30) * (y - lo) / span:.1f}"

        line = " ".join(xy(i, y) for i, y in points)
        top = 10**hi if log else hi
        bottom = 10**lo if log else lo
        svg += [
            f'<polyline fill="none" stroke="#c33" stroke-width="1.5" points="{line}"/>',
            f'<text x="2" y="14" font-size="10">{top:.3g}</text>',
            f'<text x="2" y="{height - 18}" font-size="10">{bottom:.3g}</text>',
        ]
    svg += [
        f'<text x="{pad}" y="{height - 4}" font-size="10">loss per step'
        f"{' (log scale)' if log else ''}, {len(values)} steps</text>",
        "</svg>",
    ]
    return "".join(svg)
