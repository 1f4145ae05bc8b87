"""Binary glTF 2.0 (GLB) container for one textured triangle mesh.

Written by hand rather than through trimesh: the format is a JSON header and one binary
buffer, and importing trimesh (with the parts of scipy it pulls in) cost about half a second
of a stylize run's output phase.

Layout of the file: a 12-byte header (magic ``glTF``, version 2, total length), a JSON
chunk padded with spaces and a BIN chunk padded with zeros, each to a multiple of 4 bytes.
The BIN chunk holds, each at a 4-byte aligned offset: positions (float32 VEC3), texture
coordinates (float32 VEC2), triangle indices (uint32) and the PNG image.
"""

from __future__ import annotations

import json
import struct

import numpy as np

_MAGIC = 0x46546C67  # "glTF"
_JSON = 0x4E4F534A
_BIN = 0x004E4942
_FLOAT, _UINT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_LINEAR, _CLAMP_TO_EDGE = 9729, 33071


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def glb_bytes(
    positions: np.ndarray,
    uvs: np.ndarray,
    triangles: np.ndarray,
    png: bytes,
    *,
    name: str = "meshstyle",
) -> bytes:
    """A GLB file with one mesh, its base-colour texture, double-sided and matte.

    Args:
        positions: (N, 3) vertex positions (finite).
        uvs: (N, 2) texture coordinates in the OBJ convention (v = 0 at the image's bottom
            row); flipped here to glTF's (v = 0 at the top).
        triangles: (M, 3) vertex indices.
        png: the texture image as PNG bytes.
        name: the mesh's, node's and material's name.

    Returns:
        The file's bytes.
    """
    positions = np.ascontiguousarray(positions, dtype="<f4")
    uvs = np.array(uvs, dtype="<f4")
    uvs[:, 1] = 1.0 - uvs[:, 1]
    triangles = np.ascontiguousarray(triangles, dtype="<u4")
    blobs = [positions.tobytes(), uvs.tobytes(), triangles.tobytes(), png]
    padded = [_pad(blob, b"\0") for blob in blobs]
    views, offset = [], 0
    for blob, space in zip(blobs, padded, strict=True):
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(blob)})
        offset += len(space)
    views[0]["target"] = views[1]["target"] = _ARRAY_BUFFER
    views[2]["target"] = _ELEMENT_ARRAY_BUFFER
    binary = b"".join(padded)
    document = {
        "asset": {"version": "2.0", "generator": "meshstyle"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [
            {
                "name": name,
                "primitives": [
                    {
                        "attributes": {"POSITION": 0, "TEXCOORD_0": 1},
                        "indices": 2,
                        "material": 0,
                        "mode": 4,
                    }
                ],
            }
        ],
        "materials": [
            {
                "name": name,
                "pbrMetallicRoughness": {
                    "baseColorTexture": {"index": 0},
                    "baseColorFactor": [1.0, 1.0, 1.0, 1.0],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 1.0,
                },
                "doubleSided": True,
            }
        ],
        "textures": [{"sampler": 0, "source": 0}],
        "samplers": [
            {
                "magFilter": _LINEAR,
                "minFilter": _LINEAR,
                "wrapS": _CLAMP_TO_EDGE,
                "wrapT": _CLAMP_TO_EDGE,
            }
        ],
        "images": [{"bufferView": 3, "mimeType": "image/png"}],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": _FLOAT,
                "count": len(positions),
                "type": "VEC3",
                # glTF requires the bounds of POSITION.
                "min": positions.min(axis=0).astype(float).tolist(),
                "max": positions.max(axis=0).astype(float).tolist(),
            },
            {"bufferView": 1, "componentType": _FLOAT, "count": len(uvs), "type": "VEC2"},
            {"bufferView": 2, "componentType": _UINT, "count": triangles.size, "type": "SCALAR"},
        ],
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
    }
    header = _pad(json.dumps(document, separators=(",", ":")).encode(), b" ")
    total = 12 + 8 + len(header) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<III", _MAGIC, 2, total),
            struct.pack("<II", len(header), _JSON),
            header,
            struct.pack("<II", len(binary), _BIN),
            binary,
        ]
    )
