"""OUT/report.html: every job with its sheet, turntable and loss curve, every failure with its
message; user strings escaped. Checked as a browser sees it, in headless Chromium."""

import html
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from meshstyle.cli import cli
from meshstyle.report import loss_svg, report_html
from tests.clitools import tiny_preset, write_sphere, write_style

EVIL = "<img src=x onerror=alert(1)>"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory) -> Path:
    """A batch with one finished job and one failed one whose file name holds markup."""
    root = tmp_path_factory.mktemp("report")
    meshes = root / "meshes"
    meshes.mkdir()
    write_sphere(meshes / "ball.obj")
    (meshes / f"{EVIL}.obj").write_text("v 0 0 0\n")
    style = write_style(root / "style.png")
    out = root / "out"
    args = ["stylize", meshes, style, "-o", out, "--preset", tiny_preset(root), "-q"]
    result = CliRunner().invoke(cli, [str(a) for a in args], obj={}, catch_exceptions=False)
    assert result.exit_code == 1  # the markup mesh has no faces
    return out


def test_the_page_lists_every_job_and_escapes_user_strings(batch_out):
    page = (batch_out / "report.html").read_text()
    assert "<script" not in page.lower() and EVIL not in page
    assert html.escape(EVIL) in page  # the failed job's file name, as text
    assert 'src="ball__style/before_after.png"' in page
    assert 'src="ball__style/turntable.gif"' in page
    assert page.count("<polyline") == 1  # one loss curve: the finished job's
    assert 'class="status failed"' in page and 'class="status done"' in page
    assert "mesh has no faces" in page


def test_a_report_of_hostile_strings_stays_inert(tmp_path):
    report = {
        "jobs": [
            {
                "name": 'x"><img src=x onerror=alert(1)>',
                "status": "failed",
                "mesh": "</section><h1>",
                "error": "</pre><script>alert(2)</script>",
                "outputs": {"sheet": "/etc/passwd"},
            }
        ],
        "counts": {"failed": 1},
        "settings": "</pre><script>alert(3)</script>\nlr = 0.05",
    }
    page = report_html(tmp_path, report)
    assert "<script" not in page.lower() and "<img src=x" not in page
    assert "/etc/passwd" not in page  # only files inside OUT are linked


def test_loss_curve_skips_values_that_are_not_numbers():
    svg = loss_svg([10.0, 5.0, float("nan"), 1.0, 0.5])
    points = re.search(r'points="([^"]+)"', svg)[1].split()
    assert len(points) == 4 and "log scale" in svg
    assert "nan" not in svg.lower()
    assert "<polyline" not in loss_svg([float("nan")])


def test_the_page_renders_in_chromium(batch_out, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (CI installs it: see .ci/run)")
    # A copy of the page beside it (so its relative links hold) that records, once loaded,
    # how wide each image decoded: 0 means a broken link.
    probe = batch_out / "report-probe.html"
    probe.write_text(
        (batch_out / "report.html")
        .read_text()
        .replace(
            "</body>",
            "<script>window.addEventListener('load',()=>{document.body.dataset.widths="
            "[...document.images].map(i=>i.naturalWidth).join(',');});</script></body>",
        )
    )
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    try:
        dom = subprocess.run(
            [browser, *flags, "--dump-dom", probe.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        shot = tmp_path / "report.png"
        subprocess.run(
            [browser, *flags, "--window-size=1100,1300", f"--screenshot={shot}", probe.as_uri()],
            capture_output=True,
            timeout=120,
        )
    finally:
        probe.unlink()
    widths = re.search(r'data-widths="([^"]*)"', dom)
    assert widths, dom[-2000:]
    assert [int(w) > 0 for w in widths[1].split(",")] == [True, True]  # sheet and turntable
    assert "<polyline" in dom
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1300, 1100)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # pictures, not a blank page
    keep = Path(__file__).resolve().parents[1] / ".pytest_cache" / "report-screenshot.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep)  # for a person to look at


def test_links_follow_the_job_folder_not_the_recorded_path(tmp_path):
    """A shard started from another folder recorded paths relative to it."""
    out = tmp_path / "out"
    (out / "ball__s").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out / "ball__s" / "before_after.png")
    (out / "ball__s" / "loss.csv").write_text("step,loss\n1,4\n2,2\n")
    job = {
        "name": "ball__s",
        "status": "done",
        "outputs": {
            "sheet": "../somewhere/else/out/ball__s/before_after.png",
            "losses": "out/ball__s/loss.csv",
            "turntable": "out/ball__s/turntable.gif",  # not there: not linked
        },
    }
    page = report_html(out, {"jobs": [job], "counts": {"done": 1}})
    assert 'src="ball__s/before_after.png"' in page
    assert "<polyline" in page
    assert "turntable.gif" not in page
