"""Job planning: inputs, names, shards, and the folder commit."""

import pytest

from meshstyle.jobs import (
    expand_inputs,
    parse_shard,
    plan_jobs,
    safe_name,
    shard,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bunny", "bunny"),
        ("../../etc/passwd", "etc_passwd"),
        ("..", "mesh"),
        ("a/b\\c", "a_b_c"),
        ("Crème brûlée", "Creme_brulee"),
        ("x" * 300, "x" * 64),
        ("con", "con_"),
        ("\x00\n", "mesh"),
    ],
)
def test_safe_name_never_escapes(text, expected):
    assert safe_name(text) == expected


def test_expand_inputs_files_folders_globs(tmp_path):
    (tmp_path / "a.obj").write_text("")
    (tmp_path / "b.PLY").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.obj").write_text("")
    suffixes = (".obj", ".ply")
    flat = expand_inputs([str(tmp_path)], suffixes)
    assert [p.name for p in flat] == ["a.obj", "b.PLY"]
    deep = expand_inputs([str(tmp_path)], suffixes, recursive=True)
    assert sorted(p.name for p in deep) == ["a.obj", "b.PLY", "c.obj"]
    globbed = expand_inputs([str(tmp_path / "*.obj"), str(tmp_path / "a.obj")], suffixes)
    assert [p.name for p in globbed] == ["a.obj"]  # duplicates removed
    with pytest.raises(ValueError, match="pattern matches no file"):
        expand_inputs([str(tmp_path / "*.off")], suffixes)
    with pytest.raises(ValueError, match="use --recursive"):
        expand_inputs([str(tmp_path / "sub" / "..")], (".off",))
    # A missing plain file is kept, so its job fails with a message naming it.
    assert expand_inputs([str(tmp_path / "missing.obj")], suffixes)[0].name == "missing.obj"


def test_expand_inputs_never_takes_results_in_out_for_inputs(tmp_path):
    # OUT inside the input folder: a second run must see the same inputs as the first.
    (tmp_path / "tet.obj").write_text("v 0 0 0\n")
    result = tmp_path / "out" / "tet__s"
    result.mkdir(parents=True)
    (result / "tet.obj").write_text("v 0 0 0\n")
    (result / "tet.glb").write_bytes(b"glTF")
    suffixes = (".obj", ".glb")
    everything = expand_inputs([str(tmp_path)], suffixes, recursive=True)
    assert len(everything) == 3
    for item in (str(tmp_path), str(tmp_path / "**" / "*.obj")):
        found = expand_inputs([item], suffixes, recursive=True, exclude=tmp_path / "out")
        assert found == [tmp_path / "tet.obj"], item


def test_plan_jobs_pairs_and_unique_names(tmp_path):
    meshes = [tmp_path / "x" / "bunny.obj", tmp_path / "y" / "bunny.obj"]
    styles = [tmp_path / "munch1.jpg", tmp_path / "gris1.jpg"]
    jobs = plan_jobs("stylize", meshes, styles)
    assert [j.name for j in jobs] == [
        "bunny__munch1",
        "bunny__gris1",
        "bunny__munch1-2",
        "bunny__gris1-2",
    ]
    dream = plan_jobs("deepdream", meshes[:1], layer="conv4_3")
    assert dream[0].name == "bunny__deepdream-conv4_3"


def test_shards_cover_every_job_once(tmp_path):
    jobs = plan_jobs("deepdream", [tmp_path / f"m{i}.obj" for i in range(11)], layer="conv4_3")
    for n in (1, 2, 3, 5, 11, 13):
        seen = [job for k in range(1, n + 1) for job in shard(jobs, *parse_shard(f"{k}/{n}"))]
        assert sorted(j.name for j in seen) == sorted(j.name for j in jobs)
    for bad in ("0/3", "4/3", "x", "1/0", "1-3"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
