"""Open written meshes in real clients: the Khronos glTF validator and Blender; print JSON.

For each GLB the validator's error, warning and info counts (and its first messages); for
each OBJ and GLB what Blender imports: mesh objects, faces, whether every mesh has UVs, the
texture images and materials. Folders are searched for ``*.glb`` and ``*.obj``.

Clients: ``node`` with the npm package ``gltf-validator`` (``npm install gltf-validator``,
found through ``--node-modules`` or NODE_PATH) and ``blender`` on PATH (``apt-get install
blender``; Debian's Blender 3.4 glTF importer still calls ``numpy.bool``, which the import
script restores). A client that is missing is reported as such and its checks are skipped.

Usage: python bench/client_check.py OUT/ [more files or folders] [--node-modules DIR]
Exit status 0 when every check that ran passed, 1 when one failed, 2 when no client ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VALIDATE_JS = """
const validator = require('gltf-validator');
const fs = require('fs');
(async () => {
  for (const path of process.argv.slice(1)) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(path)));
    const issues = report.issues;
    console.log(JSON.stringify({
      file: path, errors: issues.numErrors, warnings: issues.numWarnings,
      infos: issues.numInfos,
      messages: issues.messages.slice(0, 3).map(m => m.code + ': ' + m.message),
    }));
  }
})();
"""

BLENDER_PY = """
import json, os, sys
import bpy
import numpy
if not hasattr(numpy, "bool"):
    numpy.bool = bool  # Blender 3.4's glTF importer, with NumPy 1.24 and later
for path in sys.argv[sys.argv.index("--") + 1:]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    entry = {"file": path}
    try:
        if path.lower().endswith(".glb"):
            bpy.ops.import_scene.gltf(filepath=path)
        elif hasattr(bpy.ops.wm, "obj_import"):
            bpy.ops.wm.obj_import(filepath=path)
        else:
            bpy.ops.import_scene.obj(filepath=path)
    except Exception as error:
        entry["error"] = f"{type(error).__name__}: {error}"[-500:]
    meshes = [o for o in bpy.data.objects if o.type == "MESH"]
    entry.update(
        meshes=len(meshes),
        faces=sum(len(o.data.polygons) for o in meshes),
        uvs=bool(meshes) and all(len(o.data.uv_layers) > 0 for o in meshes),
        images=[[i.name, list(i.size)] for i in bpy.data.images if i.size[0] > 0],
        materials=[m.name for m in bpy.data.materials],
    )
    print("CLIENT_CHECK " + json.dumps(entry), flush=True)
"""


def _files(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in (".glb", ".obj"))
        else:
            found.append(path)
    return [p.resolve() for p in found]


def _validate(glbs: list[Path], node_modules: str | None) -> dict:
    node = shutil.which("node")
    if node is None:
        return {"skipped": "node is not installed"}
    env = dict(os.environ)
    if node_modules:
        env["NODE_PATH"] = node_modules
    found = subprocess.run(
        [node, "-e", "require.resolve('gltf-validator')"], env=env, capture_output=True
    )
    if found.returncode != 0:
        return {"skipped": "the npm package gltf-validator is not found (--node-modules)"}
    if not glbs:
        return {"files": []}
    done = subprocess.run(
        [node, "-e", VALIDATE_JS, *map(str, glbs)], env=env, capture_output=True, text=True
    )
    files = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {"files": files, "exit": done.returncode, "stderr": done.stderr[-1000:]}


def _blender(meshes: list[Path]) -> dict:
    blender = shutil.which("blender")
    if blender is None:
        return {"skipped": "blender is not installed"}
    version = subprocess.run([blender, "--version"], capture_output=True, text=True)
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "import_check.py"
        script.write_text(BLENDER_PY)
        done = subprocess.run(
            [blender, "-b", "--factory-startup", "-P", str(script), "--", *map(str, meshes)],
            capture_output=True,
            text=True,
        )
    prefix = "CLIENT_CHECK "
    files = [
        json.loads(line[len(prefix) :])
        for line in done.stdout.splitlines()
        if line.startswith(prefix)
    ]
    return {
        "version": version.stdout.splitlines()[0] if version.stdout else "?",
        "files": files,
        "exit": done.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="GLB/OBJ files or folders")
    parser.add_argument("--node-modules", default=os.environ.get("NODE_PATH"))
    args = parser.parse_args()
    files = _files(args.paths)
    glbs = [f for f in files if f.suffix.lower() == ".glb"]
    report = {
        "files": len(files),
        "gltf_validator": _validate(glbs, args.node_modules),
        "blender": _blender(files),
    }
    ran = [r for r in (report["gltf_validator"], report["blender"]) if "skipped" not in r]
    failed = any(f["errors"] for f in report["gltf_validator"].get("files", []))
    failed |= len(report["gltf_validator"].get("files", glbs)) != len(glbs)
    if "skipped" not in report["blender"]:
        imported = report["blender"]["files"]
        failed |= len(imported) != len(files)
        failed |= any("error" in f or not f["meshes"] or not f["faces"] for f in imported)
    report["ok"] = bool(ran) and not failed
    print(json.dumps(report, indent=2))
    if not ran:
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
