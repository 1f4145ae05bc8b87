"""A UV texture image is exported as it is, with its UVs, in OBJ+MTL+PNG and GLB."""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from meshstyle import export
from meshstyle.mesh import load_mesh
from meshstyle.textures import sample_image
from meshstyle.uvtexture import PyramidTexture, unwrap


def _textured_sphere():
    sphere = trimesh.creation.icosphere(subdivisions=1)
    vertices = np.asarray(sphere.vertices)
    faces = np.asarray(sphere.faces)
    uv = unwrap(vertices, faces, 64)
    texture = PyramidTexture(uv, 64, 2, torch.tensor([0.2, 0.6, 0.4]))
    with torch.no_grad():
        texture.levels[2].normal_()
    image, face_uvs = texture.export()
    return vertices, faces, image, face_uvs


def test_obj_and_glb_carry_the_image_and_uvs(tmp_path):
    vertices, faces, image, face_uvs = _textured_sphere()
    names = export.write_mesh_files(
        tmp_path, "ball", vertices, faces, None, baked=(image, face_uvs)
    )
    assert set(names) == {"obj", "mtl", "png", "glb"}
    # the PNG is the texture image itself, not a re-baked atlas
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(tmp_path / names["png"])), image)

    for kind in ("obj", "glb"):
        loaded = trimesh.load(tmp_path / names[kind], force="mesh")
        assert isinstance(loaded.visual, trimesh.visual.TextureVisuals)
        assert loaded.visual.uv is not None and len(loaded.visual.uv) == len(loaded.vertices)
        material = loaded.visual.material
        material_image = getattr(material, "image", None) or material.baseColorTexture
        assert np.asarray(material_image.convert("RGB")).shape == image.shape

    # meshstyle's own reader gets the same faces, UVs and colours back
    mesh = load_mesh(tmp_path / names["obj"])
    assert mesh.faces.shape == faces.shape
    centroid = face_uvs.mean(axis=1)
    again = mesh.face_uvs.mean(axis=1)
    assert np.allclose(
        sample_image(mesh.texture, again), sample_image(image, centroid), atol=1.5 / 255
    )
