"""Single-image 3D mesh reconstruction trained with silhouettes only.

The first application of "Neural 3D Mesh Renderer" (Kato, Ushiku, Harada, CVPR 2018): an
encoder reads one 64 x 64 RGBA image, a decoder deforms a 642-vertex sphere, and the loss
compares the mesh's silhouettes, drawn by our rasterizer, with the object's masks from two
views; the rasterizer's approximate gradient is all that teaches the network shape.

Modules:
    layout: the data layouts (ours and the original release's) and their cameras.
    data: reading and checking ``{class}_{split}_images.npz`` / ``_voxels.npz``.
    procedural: a parametric data set made with our own renderer.
    voxelize: meshes to 32^3 occupancy and voxel grids to surface meshes.
    model: the encoder, the mesh decoder, the voxel decoder and their losses.
    train: the training loop, checkpoints and logs.
    outputs: where the commands may write (run folder, data folder, eval report).
    evaluate: voxel IoU per class.
"""
