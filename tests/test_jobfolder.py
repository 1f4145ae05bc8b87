"""The job-folder contract, with jobs that write small files (no rendering)."""

import json
import threading

import pytest

from meshstyle.batch import run_batch
from meshstyle.jobfolder import (
    COMPLETE_MARKER,
    JobBusy,
    dumps,
    file_record,
    job_lock,
    lock_path,
    read_marker,
    remove_own_files,
    what_is_at,
    write_job_folder,
)
from meshstyle.jobs import Job


def _job(tmp_path, name: str) -> Job:
    mesh = tmp_path / f"{name}.obj"
    mesh.write_text(f"# {name}\n")
    return Job("deepdream", mesh, None, name)


def _writer(calls: list, before=None):
    """A job writer that writes two files and records which jobs it ran."""

    def write(job: Job, folder):
        if before:
            before(job)
        (folder / "a.txt").write_text(job.name)
        (folder / "b.txt").write_text("b")
        calls.append(job.name)
        return {"outputs": {"a": "a.txt", "b": "b.txt"}, "losses": {"final": {"loss": 1.0}}}

    return write


def _made_from(job: Job) -> dict:
    return {"kind": job.kind, "inputs": {"mesh": file_record(job.mesh)}, "settings": {"x": 1}}


def _complete_and_whole(folder) -> bool:
    marker = read_marker(folder)
    return marker is not None and all((folder / f).is_file() for f in marker["outputs"].values())


def test_a_job_another_run_is_writing_is_waited_for_and_then_skipped(tmp_path):
    """Two runs into one OUT: the second leaves the first's job alone, then skips it."""
    out = tmp_path / "out"
    out.mkdir()
    a, b = _job(tmp_path, "a"), _job(tmp_path, "b")
    holding, release = threading.Event(), threading.Event()

    def other_run():
        with job_lock(out, "a", wait=True):
            holding.set()
            release.wait(30)
            write_job_folder(out, "a", _made_from(a), lambda f: _writer([])(a, f), overwrite=False)

    thread = threading.Thread(target=other_run)
    thread.start()
    assert holding.wait(30)
    calls: list[str] = []
    # b's writer lets the other run finish a: by then a was found busy and deferred
    waited: list[str] = []
    outcomes = run_batch(
        [a, b],
        out,
        write=_writer(calls, before=lambda job: release.set()),
        made_from=_made_from,
        on_job_wait=lambda index, job: waited.append(job.name),
    )
    thread.join(30)
    assert [o.status for o in outcomes] == ["skipped", "done"]
    assert waited == ["a"]
    assert calls == ["b"]  # a was written once, by the other run
    assert _complete_and_whole(out / "a") and _complete_and_whole(out / "b")
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]  # no partials, no locks left


def test_a_busy_lock_is_reported_at_once_when_not_waiting(tmp_path):
    with job_lock(tmp_path, "j", wait=False):
        with pytest.raises(JobBusy, match="another meshstyle run"):
            with job_lock(tmp_path, "j", wait=False):
                pass
    assert not lock_path(tmp_path, "j").exists()
    with job_lock(tmp_path, "j", wait=False):  # free again
        pass


def test_rerun_skips_only_the_same_inputs_and_settings(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    job = _job(tmp_path, "m")
    calls: list[str] = []
    assert run_batch([job], out, write=_writer(calls), made_from=_made_from)[0].status == "done"
    assert run_batch([job], out, write=_writer(calls), made_from=_made_from)[0].status == "skipped"
    moved = tmp_path / "elsewhere" / "m.obj"
    moved.parent.mkdir()
    moved.write_bytes(job.mesh.read_bytes())
    same_content = Job(job.kind, moved, None, job.name)
    outcome = run_batch([same_content], out, write=_writer(calls), made_from=_made_from)[0]
    assert outcome.status == "skipped"  # a moved file is the same input

    job.mesh.write_text("# another mesh with the same name\n")
    before = (out / "m" / COMPLETE_MARKER).read_bytes()
    outcome = run_batch([job], out, write=_writer(calls), made_from=_made_from)[0]
    assert outcome.status == "failed"
    assert "mesh" in outcome.error and "other content" in outcome.error
    assert "--overwrite" in outcome.error
    assert (out / "m" / COMPLETE_MARKER).read_bytes() == before  # the old result is kept

    def other_settings(j):
        return {**_made_from(j), "settings": {"x": 2}}

    outcome = run_batch([job], out, write=_writer(calls), made_from=other_settings)[0]
    assert outcome.status == "failed" and "setting x 1 -> 2" in outcome.error
    outcome = run_batch([job], out, write=_writer(calls), made_from=other_settings, overwrite=True)[
        0
    ]
    assert outcome.status == "done"
    assert read_marker(out / "m")["made_from"]["settings"] == {"x": 2}
    assert calls == ["m", "m"]


def test_an_obj_texture_change_is_a_new_input(tmp_path):
    mesh = tmp_path / "t.obj"
    mesh.write_text("mtllib t.mtl\nv 0 0 0\n")
    (tmp_path / "t.mtl").write_text("newmtl a\nmap_Kd -s 1 1 1 tex.png\n")
    (tmp_path / "tex.png").write_bytes(b"one")
    first = file_record(mesh)
    (tmp_path / "tex.png").write_bytes(b"two")
    assert set(first["also"]) == {"t.mtl", "tex.png"}
    assert file_record(mesh)["also"]["tex.png"] != first["also"]["tex.png"]


@pytest.mark.parametrize("what", ["folder", "file", "symlink"])
def test_nothing_meshstyle_did_not_write_is_touched(tmp_path, what):
    out = tmp_path / "out"
    out.mkdir()
    job = _job(tmp_path, "mine")
    theirs = out / "mine"
    if what == "folder":
        theirs.mkdir()
        (theirs / "thesis.tex").write_text("years of work")
    elif what == "file":
        theirs.write_text("years of work")
    else:
        (tmp_path / "target").mkdir()
        theirs.symlink_to(tmp_path / "target")
    for overwrite in (False, True):
        outcome = run_batch(
            [job], out, write=_writer([]), made_from=_made_from, overwrite=overwrite
        )[0]
        assert outcome.status == "failed"
        assert str(theirs) in outcome.error
    if what == "folder":
        assert (theirs / "thesis.tex").read_text() == "years of work"
        assert [p.name for p in theirs.iterdir()] == ["thesis.tex"]
    elif what == "file":
        assert theirs.read_text() == "years of work"
    else:
        assert theirs.is_symlink()
    assert sorted(p.name for p in out.iterdir()) == ["mine"]  # nothing renamed aside


def test_a_stranger_appearing_while_the_job_runs_is_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    job = _job(tmp_path, "late")

    def put_theirs(_job):
        (out / "late").mkdir()
        (out / "late" / "notes.txt").write_text("mine")

    outcome = run_batch([job], out, write=_writer([], before=put_theirs), made_from=_made_from)[0]
    assert outcome.status == "failed" and "completion marker" in outcome.error
    assert (out / "late" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["late"]


def _other_settings(job: Job) -> dict:
    return {**_made_from(job), "settings": {"x": 2}}


def test_overwrite_carries_the_users_files_into_the_new_result(tmp_path):
    """Replacing a result keeps every file and folder the user put into it, as it was."""
    out = tmp_path / "out"
    out.mkdir()
    job = _job(tmp_path, "n")
    assert run_batch([job], out, write=_writer([]), made_from=_made_from)[0].status == "done"
    folder = out / "n"
    (folder / "a.txt").write_text("edited by the user, but a.txt is the job's")
    (folder / "notes.txt").write_text("mine")
    (folder / ".hidden").write_text("mine too")
    (folder / "drafts").mkdir()
    (folder / "drafts" / "one.txt").write_text("draft")
    outcome = run_batch([job], out, write=_writer([]), made_from=_other_settings, overwrite=True)[0]
    assert outcome.status == "done", outcome.error
    assert read_marker(folder)["made_from"]["settings"] == {"x": 2}
    assert (folder / "a.txt").read_text() == "n"  # the job's own file is replaced
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / ".hidden").read_text() == "mine too"
    assert (folder / "drafts" / "one.txt").read_text() == "draft"
    assert read_marker(folder)["files"] == ["a.txt", "b.txt"]
    assert sorted(p.name for p in out.iterdir()) == ["n"]  # nothing left aside

    # and again: the carried files are still the user's, not the job's
    outcome = run_batch([job], out, write=_writer([]), made_from=_made_from, overwrite=True)[0]
    assert outcome.status == "done", outcome.error
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "drafts" / "one.txt").read_text() == "draft"


def test_a_users_file_with_the_name_of_a_new_output_stops_the_replacement(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    job = _job(tmp_path, "c")
    assert run_batch([job], out, write=_writer([]), made_from=_made_from)[0].status == "done"
    (out / "c" / "c.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in (out / "c").iterdir()}

    def writes_more(j, folder):
        (folder / "c.txt").write_text("the job's")
        return _writer([])(j, folder)

    outcome = run_batch([job], out, write=writes_more, made_from=_other_settings, overwrite=True)[0]
    assert outcome.status == "failed"
    assert str(out / "c") in outcome.error and "c.txt" in outcome.error
    assert "not written by meshstyle" in outcome.error
    assert {p.name: p.read_bytes() for p in (out / "c").iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == ["c"]


def test_a_clash_known_from_the_old_result_is_refused_before_the_job_runs(tmp_path):
    # The user put a folder where the result had its b.txt: the new result writes b.txt
    # again, so the replacement would fail at the end; it fails before the work instead.
    out = tmp_path / "out"
    out.mkdir()
    job = _job(tmp_path, "e")
    assert run_batch([job], out, write=_writer([]), made_from=_made_from)[0].status == "done"
    (out / "e" / "b.txt").unlink()
    (out / "e" / "b.txt").mkdir()
    (out / "e" / "b.txt" / "notes").write_text("mine")
    calls = []
    outcome = run_batch(
        [job], out, write=_writer(calls), made_from=_other_settings, overwrite=True
    )[0]
    assert outcome.status == "failed" and "b.txt" in outcome.error
    assert calls == []  # refused before the writer ran
    assert (out / "e" / "b.txt" / "notes").read_text() == "mine"


def test_a_marker_without_a_file_list_keeps_all_but_its_outputs(tmp_path):
    """Results of versions before the list: only the files ``outputs`` names are the job's."""
    out = tmp_path / "out"
    out.mkdir()
    job = _job(tmp_path, "o")
    assert run_batch([job], out, write=_writer([]), made_from=_made_from)[0].status == "done"
    marker = read_marker(out / "o")
    del marker["files"]
    (out / "o" / COMPLETE_MARKER).write_text(dumps(marker))
    (out / "o" / "notes.txt").write_text("mine")
    outcome = run_batch([job], out, write=_writer([]), made_from=_other_settings, overwrite=True)[0]
    assert outcome.status == "done", outcome.error
    assert (out / "o" / "notes.txt").read_text() == "mine"

    # a file such a marker does not name is the user's, even at an output's name: refused
    marker = read_marker(out / "o")
    del marker["files"]
    marker["outputs"] = {"a": "a.txt"}
    (out / "o" / COMPLETE_MARKER).write_text(dumps(marker))
    outcome = run_batch([job], out, write=_writer([]), made_from=_made_from, overwrite=True)[0]
    assert outcome.status == "failed" and "b.txt" in outcome.error
    assert (out / "o" / "notes.txt").read_text() == "mine"


def test_a_replaced_result_left_aside_loses_only_its_own_files(tmp_path):
    aside = tmp_path / ".r.1.old"
    (aside / "sub").mkdir(parents=True)
    (aside / "a.txt").write_text("ours")
    (aside / "sub" / "b.txt").write_text("ours")
    (aside / "sub" / "notes.txt").write_text("mine")
    (aside / COMPLETE_MARKER).write_text(dumps({"files": ["a.txt", "sub/b.txt"]}))
    (aside / "empty").mkdir()
    remove_own_files(aside)
    left = ["empty", "sub", "sub/notes.txt"]
    assert sorted(p.relative_to(aside).as_posix() for p in aside.rglob("*")) == left
    remove_own_files(aside)  # without its marker, nothing in it is known to be ours
    assert sorted(p.relative_to(aside).as_posix() for p in aside.rglob("*")) == left

    (aside / "empty").rmdir()
    (tmp_path / "outside.txt").write_text("mine")
    listed = ["../outside.txt", str(tmp_path / "outside.txt"), "sub/../../outside.txt"]
    (aside / COMPLETE_MARKER).write_text(dumps({"files": listed}))
    remove_own_files(aside)  # a marker never names anything outside its folder
    assert (tmp_path / "outside.txt").read_text() == "mine"
    assert (aside / "sub" / "notes.txt").read_text() == "mine"
    (aside / "a.txt").write_text("ours")
    (aside / COMPLETE_MARKER).write_text(dumps({"files": ["a.txt", "sub/notes.txt"]}))
    remove_own_files(aside)
    assert not aside.exists()


def test_leftovers_of_a_killed_run_are_cleared_under_the_lock(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".k.abc123.partial").mkdir()
    (out / ".k.123.old").mkdir()
    (out / ".k.123.old" / COMPLETE_MARKER).write_text("{}")  # a replaced result of ours
    (out / ".k.456.old").mkdir()  # no marker: not known to be ours, so kept
    (out / ".other.abc.partial").mkdir()  # another job's: not ours to clear
    # Jobs whose names start with "k." (a painting "s.v2.jpg" beside "s.jpg"): theirs too,
    # maybe being written by a run beside this one.
    (out / ".k.v2.abc123.partial").mkdir()
    (out / ".k.v2.123.old").mkdir()
    (out / ".k.v2.123.old" / COMPLETE_MARKER).write_text("{}")
    job = _job(tmp_path, "k")
    assert run_batch([job], out, write=_writer([]), made_from=_made_from)[0].status == "done"
    assert sorted(p.name for p in out.iterdir()) == [
        ".k.456.old",
        ".k.v2.123.old",
        ".k.v2.abc123.partial",
        ".other.abc.partial",
        "k",
    ]


def test_reports_are_strict_json():
    text = dumps({"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -float("inf")}})

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    assert json.loads(text, parse_constant=refuse) == {
        "a": None,
        "b": [None, 1.5],
        "c": {"d": None},
    }


def test_what_is_at_tells_the_states_apart(tmp_path):
    job = _job(tmp_path, "s")
    made = _made_from(job)
    assert what_is_at(tmp_path / "s", made).state == "absent"
    write_job_folder(tmp_path, "s", made, lambda f: {"outputs": {}}, overwrite=False)
    assert what_is_at(tmp_path / "s", made).state == "same"
    assert what_is_at(tmp_path / "s", {**made, "settings": {"x": 3}}).state == "other"
    (tmp_path / "s" / COMPLETE_MARKER).unlink()
    assert what_is_at(tmp_path / "s", made).state == "foreign"
