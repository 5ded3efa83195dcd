"""The morning-after view: per-job contact sheets and a static, offline index.html in the output folder."""

from __future__ import annotations

import fcntl
import html
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path
from urllib.parse import quote

from daemon.media.atomic import write_atomic
from daemon.media.path_text import display, from_text
from daemon.config import Config
from daemon.media.derived_names import error_report_path, failed_copy_path
from daemon.review.contact_sheet import GALLERY_WIDTH, sheet_path
from daemon.review.intake_report import IntakeReport, read_report
from daemon.review.previews import ensure_preview, needs_preview
from daemon.review.status import WAITING_PREFIX
from daemon.review.store_wait import read_wait
from daemon.store import Job, JobStore

log = logging.getLogger(__name__)

def write_gallery(config: Config, store: JobStore) -> Path:
    """Rebuild OUTPUT/index.html atomically from the job store, one writer at a time."""
    target = config.output / "index.html"
    # Without the lock, a worker that read the job store first could rename its page over a newer one
    # (a failure recorded a moment later by another worker would then be missing until the next job).
    with open(config.state / "gallery.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        write_atomic(target, render_gallery(config, store))
    return target


def render_gallery(config: Config, store: JobStore) -> str:
    """The whole page: header with counts and time per job, results by day, then failures."""
    jobs = store.jobs(limit=100_000)
    done = [j for j in jobs if j.state == "done"]
    failed = [j for j in jobs if j.state == "failed"]
    waiting = [j for j in jobs if j.state == "queued" and (j.error or "").startswith(WAITING_PREFIX)]
    counts = store.counts()
    intake = read_report(config.state)
    store_wait = read_wait(config.state)
    mean = sum(j.seconds or 0 for j in done) / len(done) if done else 0.0
    ignored = f" &middot; {intake.ignored_count} ignored" if intake.ignored_count else ""
    parts = [_HEAD, "<header><h1>style-daemon results</h1>",
             f"<p class=counts>{counts.done} done &middot; {counts.failed} failed &middot; {counts.queued} queued "
             f"&middot; {counts.running} running{ignored} &middot; {mean:.0f} s per job &middot; updated "
             f"{html.escape(time.strftime('%Y-%m-%d %H:%M'))}</p></header>"]
    if store_wait.waiting:  # the job store itself is down: the counts above are as of the last look
        parts.append(f"<h2>Waiting</h2><p class=waiting>waiting for the job store: {html.escape(store_wait.cause)} "
                     "(photos arriving meanwhile are queued once it answers)</p>")
    if waiting:
        # The environment, not the photos: said first and in words, with how it resolves itself.
        parts.append(f"<h2>Waiting</h2><p class=waiting>{html.escape(waiting[0].error or '')}</p><ul class=waiting>")
        parts.extend(f"<li><span class=name>{html.escape(j.rel_path)}</span> [{html.escape(j.style_set)}]</li>"
                     for j in waiting)
        parts.append("</ul>")
    for day, day_jobs in _by_day(done).items():
        parts.append(f"<h2>{html.escape(day)}</h2><div class=grid>")
        parts.extend(_result_card(config, job) for job in day_jobs)
        parts.append("</div>")
    if failed:
        parts.append("<h2>Failed</h2><ul class=failed>")
        parts.extend(_failed_item(config, job) for job in failed)
        parts.append("</ul>")
    if intake.ignored_count:
        parts.append(_ignored_section(intake))
    parts.append(_FOOT)
    return "".join(parts)


def _by_day(jobs: list[Job]) -> "OrderedDict[str, list[Job]]":
    groups: OrderedDict[str, list[Job]] = OrderedDict()
    for job in sorted(jobs, key=lambda j: j.finished or 0, reverse=True):
        day = time.strftime("%Y-%m-%d", time.localtime(job.finished or 0))
        groups.setdefault(day, []).append(job)
    return groups


def _href(config: Config, path: Path) -> str:
    try:
        rel = path.relative_to(config.output)
    except ValueError:
        return "file://" + quote(os.fsencode(path))
    return "/".join(quote(os.fsencode(part)) for part in rel.parts)  # the name's real bytes, percent-encoded


def _result_card(config: Config, job: Job) -> str:
    output = from_text(job.output_path)
    sheet = sheet_path(output)
    thumb = sheet if sheet.exists() else _viewable(config, output)
    name = html.escape(display(job.rel_path))
    when = time.strftime("%H:%M", time.localtime(job.finished or 0))
    return (
        f"<figure><a href=\"{html.escape(_href(config, output))}\"><img loading=lazy "
        f"src=\"{html.escape(_href(config, thumb))}\" alt=\"{name}\"></a>"
        f"<figcaption><span class=name>{name}</span> &middot; {html.escape(job.style_set)} &middot; "
        f"{job.seconds or 0:.0f} s &middot; {when} &middot; "
        f"<a href=\"{html.escape(_href(config, Path(str(output) + '.json')))}\">sidecar</a></figcaption></figure>"
    )


def _viewable(config: Config, output: Path) -> Path:
    """The result itself, or for a TIFF (browsers show none) its JPEG preview."""
    if not needs_preview(output):
        return output
    return ensure_preview(config.output, output) or output


def _failed_item(config: Config, job: Job) -> str:
    report = error_report_path(failed_copy_path(config.failed_dir, from_text(job.rel_path).name))
    link = f" <a href=\"{html.escape(_href(config, report))}\">details</a>" if report.exists() else ""
    return (f"<li><span class=name>{html.escape(display(job.rel_path))}</span> [{html.escape(job.style_set)}]: "
            f"{html.escape(display(job.error or 'unknown error'))}{link}</li>")


def _ignored_section(intake: IntakeReport) -> str:
    """Files someone put in the input folder that are not photos style-daemon reads, and why."""
    shown = len(intake.ignored)
    more = f" (the newest {shown} shown)" if shown < intake.ignored_count else ""
    items = "".join(f"<li><span class=name>{html.escape(display(i.name))}</span>: {html.escape(display(i.reason))}</li>"
                    for i in reversed(intake.ignored))
    return (f"<h2>Ignored</h2><p class=ignored>{intake.ignored_count} file(s) in the input folder are not photos "
            f"style-daemon reads{more}:</p><ul class=ignored>{items}</ul>")


_HEAD = """<!doctype html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width,initial-scale=1"><title>style-daemon results</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
h1{font-size:1.4em;margin:0}.counts{color:#555}h2{font-size:1.1em;border-bottom:1px solid #ddd}
.grid{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;background:#fff;padding:6px;border:1px solid #ddd}
figure img{display:block;max-width:%dpx;height:auto}figcaption{font-size:12px;color:#444;max-width:%dpx}
.failed li{margin:.3em 0}.name{font-weight:600}
</style></head><body>""" % (GALLERY_WIDTH, GALLERY_WIDTH)  # sheets' labels are sized for this width

# Marks the page with how many images loaded, for people (broken thumbnails stand out) and for tests.
_FOOT = """<script>
addEventListener('load',function(){var i=document.images,n=0;for(var k=0;k<i.length;k++)
{if(i[k].complete&&i[k].naturalWidth>0)n++;else i[k].style.outline='3px solid red'}
document.body.setAttribute('data-images',n+'/'+i.length)});
</script></body></html>
"""
