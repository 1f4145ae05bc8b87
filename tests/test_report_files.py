"""OUT's report files: meshstyle replaces only the report.json and report.html it wrote."""

import json

import pytest
from click.testing import CliRunner

from meshstyle.batch import JobOutcome
from meshstyle.cli import cli
from meshstyle.jobs import Job
from meshstyle.report import (
    HTML_NAME,
    REPORT_FORMAT,
    REPORT_NAME,
    check_reports_replaceable,
    write_reports,
    written_by_meshstyle,
)
from tests.clitools import tiny_preset, write_sphere, write_style

#: report.json and the head of report.html as versions before the format field wrote them.
OLD_JSON = {
    "jobs": [{"name": "ball__style", "status": "done", "outputs": {}}],
    "counts": {"done": 1},
    "settings": "iterations = 2\n",
}
OLD_HTML = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
    "<title>meshstyle report: out</title>\n<style></style></head><body>\n</body></html>\n"
)


def _outcomes(tmp_path):
    return [JobOutcome(Job("stylize", tmp_path / "ball.obj", tmp_path / "s.png", "b__s"), "done")]


def test_reports_carry_what_makes_them_meshstyles(tmp_path):
    write_reports(tmp_path, _outcomes(tmp_path), "x = 1\n")
    assert json.loads((tmp_path / REPORT_NAME).read_text())["format"] == REPORT_FORMAT
    assert written_by_meshstyle(tmp_path / REPORT_NAME)
    assert written_by_meshstyle(tmp_path / HTML_NAME)
    write_reports(tmp_path, _outcomes(tmp_path), "x = 1\n", shard=(1, 2))
    assert written_by_meshstyle(tmp_path / "report-shard-1-of-2.json")
    assert written_by_meshstyle(tmp_path / REPORT_NAME)


def test_reports_of_earlier_versions_are_recognised_and_replaced(tmp_path):
    (tmp_path / REPORT_NAME).write_text(json.dumps(OLD_JSON, indent=2))
    (tmp_path / HTML_NAME).write_text(OLD_HTML)
    check_reports_replaceable(tmp_path)
    write_reports(tmp_path, _outcomes(tmp_path), "x = 1\n")
    assert json.loads((tmp_path / REPORT_NAME).read_text())["jobs"][0]["name"] == "b__s"
    assert "b__s" in (tmp_path / HTML_NAME).read_text()


@pytest.mark.parametrize(
    "name, text",
    [
        (REPORT_NAME, "mine"),
        (REPORT_NAME, '{"jobs": ["my own list"]}'),
        (REPORT_NAME, json.dumps({**OLD_JSON, "format": "my-format"})),
        (REPORT_NAME, json.dumps(OLD_JSON)[:-1]),
        (HTML_NAME, "<html><title>my report</title></html>"),
        ("report-shard-1-of-2.json", "mine"),
    ],
)
def test_a_users_report_file_is_never_replaced(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    with pytest.raises(FileExistsError, match="not written by meshstyle") as caught:
        check_reports_replaceable(tmp_path, (1, 2))
    assert str(tmp_path / name) in str(caught.value)
    with pytest.raises(FileExistsError, match=name):
        write_reports(tmp_path, _outcomes(tmp_path), "x = 1\n", shard=(1, 2))
    assert (tmp_path / name).read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing else written


def test_a_link_at_a_reports_name_is_not_meshstyles(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(OLD_JSON))
    (tmp_path / REPORT_NAME).symlink_to(target)
    with pytest.raises(FileExistsError, match=REPORT_NAME):
        check_reports_replaceable(tmp_path)


def test_the_command_refuses_a_users_report_before_any_job(tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj", subdivisions=0)
    style = write_style(tmp_path / "style.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / REPORT_NAME).write_text("mine")
    (out / HTML_NAME).write_text("mine")
    args = ["stylize", mesh, style, "-o", out, "--preset", tiny_preset(tmp_path), "-q"]
    result = CliRunner().invoke(cli, [str(a) for a in args], obj={}, catch_exceptions=False)
    assert result.exit_code == 1
    assert str(out / REPORT_NAME) in result.output and str(out / HTML_NAME) in result.output
    assert "not written by meshstyle" in result.output and "Traceback" not in result.output
    assert (out / REPORT_NAME).read_text() == "mine" and (out / HTML_NAME).read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == [HTML_NAME, REPORT_NAME]  # no job ran
