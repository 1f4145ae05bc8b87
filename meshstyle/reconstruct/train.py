"""Training a reconstructor with silhouettes: the loop, its checkpoints and its log.

A run folder holds:

- ``config.json``: the :class:`TrainSettings`, the classes and the data layout;
- ``checkpoint.pt``: everything needed to resume (model, optimizer, step, random states),
  a dict of tensors and plain values loadable with ``torch.load(weights_only=True)``;
- ``model.pt``: the model's state dict alone, what ``predict`` and ``eval`` read;
- ``log.csv``: one row per step (loss terms, images/s) with the validation IoU where measured;
- ``curves.png``: the loss and validation IoU against steps.

Every file is written atomically, so an interrupted run resumes from its last checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from meshstyle.fsutil import atomic_path, atomic_write_text, check_writable
from meshstyle.precision import PRECISIONS, resolve_precision
from meshstyle.reconstruct.data import Split, load_split, sample_batch, to_float
from meshstyle.reconstruct.evaluate import THRESHOLDS, score
from meshstyle.reconstruct.layout import IMAGE_SIZE, VIEWS, get_layout
from meshstyle.reconstruct.model import (
    DECODERS,
    Reconstructor,
    adjacent_face_pairs,
    flatten_loss,
    laplacian_loss,
    mean_neighbours,
    project_voxels,
    soft_iou_loss,
    view_rays,
)
from meshstyle.reconstruct.outputs import check_run_folder

LOG_FIELDS = (
    "step",
    "seconds",
    "lr",
    "loss",
    "silhouette",
    "regulariser",
    "images_per_s",
    "val_iou",
)

LR_SCHEDULES = ("constant", "cosine")

#: Seconds between saves while training: writing the checkpoint (about 350 MB with the
#: optimizer's moments) takes over a second, several times a validation's cost.
SAVE_INTERVAL_S = 120.0


@dataclass(frozen=True)
class TrainSettings:
    """How a reconstructor is trained (fixed for the life of a run).

    Attributes:
        decoder: "mesh" (sphere deformation) or "voxel" (32^3 occupancy).
        layout: the data's conventions, "meshstyle" or "original".
        classes: class names to train on; empty for every class in the data.
        batch_size: objects per step; each is seen from two views (2 x batch images).
        learning_rate: Adam's step size (the original: 1e-4 over a million steps on a GPU).
        lr_schedule: "constant" (the original), or "cosine": each ``train`` call anneals the
            step size from ``learning_rate`` to 0 over its own budget of steps or minutes
            (a resumed run starts a new annealing from the full rate).
        warmup_steps: the step size rises linearly from ``learning_rate / warmup_steps`` to
            ``learning_rate`` over the run's first ``warmup_steps`` steps (0: no warm-up,
            the original's). Adam's first steps move every weight by about the full rate at
            once, which can crumple the template mesh and leave the decoder stuck.
        batch_norm: batch-normalise the encoder's convolutions (see
            :class:`~meshstyle.reconstruct.model.Encoder`; the original has none).
        flatten_weight: weight of the dihedral-angle smoothness loss (mesh decoder).
        laplacian_weight: weight of the uniform Laplacian loss (mesh decoder).
        seed: seeds the weights and the batches.
        eval_every: steps between validation IoUs and checkpoints.
        val_objects: validation objects scored each time (one fixed view each).
        ray_samples: points per pixel ray when projecting voxels (voxel decoder).
        voxel_silhouette_size: side of the silhouettes the voxel decoder is trained on.
        precision: what the encoder's convolutions and layers train in: "auto" (bf16 where
            the device runs it fast, see :mod:`meshstyle.precision`), "fp32" or "bf16". The
            decoder, the silhouettes and the losses stay in float32, and the weights are
            float32 either way. A run saved before the setting existed trained in fp32.
    """

    decoder: str = "mesh"
    layout: str = "meshstyle"
    classes: tuple[str, ...] = ()
    batch_size: int = 64
    learning_rate: float = 1e-4
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    batch_norm: bool = False
    flatten_weight: float = 5e-4
    laplacian_weight: float = 5e-3
    seed: int = 0
    eval_every: int = 50
    val_objects: int = 100
    ray_samples: int = 48
    voxel_silhouette_size: int = 32
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {list(DECODERS)}; got {self.decoder!r}")
        get_layout(self.layout)
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be an int >= 1; got {self.batch_size!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {list(LR_SCHEDULES)}; got {self.lr_schedule!r}"
            )
        if not (isinstance(self.warmup_steps, int) and self.warmup_steps >= 0):
            raise ValueError(f"warmup_steps must be an int >= 0; got {self.warmup_steps!r}")
        if not (self.flatten_weight >= 0 and self.laplacian_weight >= 0):
            raise ValueError("flatten_weight and laplacian_weight must be >= 0")
        if not (self.eval_every >= 1 and self.val_objects >= 1):
            raise ValueError("eval_every and val_objects must be >= 1")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}; got {self.precision!r}")

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["classes"] = list(self.classes)
        return out

    @classmethod
    def from_json(cls, data: dict) -> TrainSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["classes"] = tuple(kwargs.get("classes", ()))
        kwargs.setdefault("precision", "fp32")  # what runs saved without it trained in
        return cls(**kwargs)


@dataclass(frozen=True)
class StepReport:
    """What one step did, for progress displays.

    Attributes:
        step: steps done so far in the run.
        loss: total loss of this step.
        silhouette: 1 - mean soft IoU of this step's silhouettes.
        val_iou: validation voxel IoU if measured at this step, else None.
        images_per_s: input images per second over this step.
    """

    step: int
    loss: float
    silhouette: float
    val_iou: float | None
    images_per_s: float


@dataclass(frozen=True)
class TrainOutcome:
    """A finished (or stopped) training invocation.

    Attributes:
        run: the run folder.
        steps: steps done in total, over every invocation.
        steps_now: steps done by this invocation.
        seconds_now: wall time of this invocation's steps.
        val_iou: the last validation IoU.
        resumed: whether it continued an earlier run.
    """

    run: Path
    steps: int
    steps_now: int
    seconds_now: float
    val_iou: float | None
    resumed: bool


def load_model(run: str | Path, device: str = "cpu") -> tuple[Reconstructor, dict]:
    """The trained model of a run folder and its config.

    Raises:
        FileNotFoundError, ValueError: the folder is not a finished or checkpointed run.
    """
    run = Path(run)
    config_path, model_path = run / "config.json", run / "model.pt"
    for path in (config_path, model_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: not found; --model must be a run folder written by "
                "'meshstyle reconstruct train'"
            )
    try:
        config = json.loads(config_path.read_text())
        settings = TrainSettings.from_json(config["settings"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{config_path}: not a reconstruct run config ({exc})") from None
    model = Reconstructor(settings.decoder, settings.batch_norm)
    try:
        state = torch.load(model_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise ValueError(f"{model_path}: cannot load the model ({type(exc).__name__})") from None
    return model.to(device).eval(), config


#: What every checkpoint holds (see :meth:`Trainer.save`).
CHECKPOINT_KEYS = ("model", "optimizer", "step", "numpy_rng", "torch_rng", "settings")


def _load_checkpoint(path: Path) -> dict:
    """A run's checkpoint, checked to be one that :meth:`Trainer.save` wrote.

    Raises:
        ValueError: the file cannot be read or is another program's checkpoint.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
        if missing:
            raise ValueError(f"no {missing[0]!r} entry")
        TrainSettings.from_json(json.loads(checkpoint["settings"]))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise ValueError(
            f"{path}: not a checkpoint of 'meshstyle reconstruct train' "
            f"({type(exc).__name__}: {exc}); choose another run folder"
        ) from None
    return checkpoint


def _trained_classes(run: Path, checkpoint: dict) -> list[str] | None:
    """The classes a run was trained on: from its checkpoint, or for a checkpoint written
    before it recorded them, from the run's config.json; None when neither says."""
    classes = checkpoint.get("classes")
    if classes is None:
        try:
            classes = json.loads((run / "config.json").read_text(encoding="utf-8"))["classes"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return None
    return classes or None


def _lay_out_like_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor (Adam's moments) its parameter's memory layout.

    The fused Adam pairs a parameter's elements with its gradient's and moments' in memory
    order, so moments saved in another layout (NCHW, by runs from before the convolutions
    went channels_last) would update the wrong weights, silently; ``load_state_dict`` keeps
    the saved layout.
    """
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == param.shape:
                if value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _save_torch(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _write_log(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


class Trainer:
    """One run: a model, its optimizer and data, stepping and saving.

    Raises:
        FileExistsError: ``run`` is a file or a folder of other files (see
            :func:`meshstyle.reconstruct.outputs.check_run_folder`).
        PermissionError: ``run`` cannot be created or written (checked, and created,
            before the data is loaded).
        ValueError: ``run`` holds a checkpoint that cannot be read.

    Args:
        data: the data folder.
        run: the run folder: new or empty (created), or a run (resumed from its checkpoint).
        settings: used for a new run; a resumed run keeps the settings it was started with.
        device: torch device and rasterizer backend, e.g. ``("cpu", "cpu")``.
    """

    def __init__(self, data: str | Path, run: str | Path, settings: TrainSettings, device=None):
        self.run = Path(run)
        self.torch_device, self.backend = device or ("cpu", "cpu")
        # Refused before anything is read or written: a folder of the user's own files is
        # never trained into (the run's files would replace theirs).
        self.resumed = check_run_folder(self.run)
        # Before the data is loaded (which takes a while): a run that could not be saved
        # would be lost. This creates a new run's folder; left empty, it is still accepted
        # as a new run.
        check_writable(self.run)
        trained = None
        if self.resumed:
            checkpoint = _load_checkpoint(self.run / "checkpoint.pt")
            settings = TrainSettings.from_json(json.loads(checkpoint["settings"]))
            trained = _trained_classes(self.run, checkpoint)
        self.settings = settings
        layout = get_layout(settings.layout)
        # A resumed run keeps the classes it was trained on, even when it took "every class"
        # and the data folder has gained some since.
        classes = trained or list(settings.classes) or None
        self.train_split: Split = load_split(data, "train", layout, classes)
        self.val_split: Split = load_split(data, "val", layout, list(self.train_split.classes))
        if not self.resumed:
            torch.manual_seed(settings.seed)
        self.model = Reconstructor(settings.decoder, settings.batch_norm).to(self.torch_device)
        self.precision = resolve_precision(settings.precision, self.torch_device)
        # The fused kernel updates all 26 M parameters in one pass: on 2 CPU cores a step
        # of it takes 21 ms against 154 ms for the per-tensor loop (a quarter of a step).
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=settings.learning_rate, betas=(0.9, 0.999), fused=True
        )
        self.rng = np.random.default_rng(settings.seed)
        self.step_count = 0
        self.threshold: float | None = None
        self.rows: list[dict] = []
        if self.resumed:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            _lay_out_like_parameters(self.optimizer)
            self.step_count = int(checkpoint["step"])
            self.rng.bit_generator.state = json.loads(checkpoint["numpy_rng"])
            torch.set_rng_state(checkpoint["torch_rng"])
            self.rows = _read_log(self.run / "log.csv")[: self.step_count]
            config_path = self.run / "config.json"
            if config_path.is_file():
                self.threshold = json.loads(config_path.read_text()).get("voxel_threshold")
        val_rng = np.random.default_rng(settings.seed + 1)
        count = min(settings.val_objects, len(self.val_split))
        self.val_objects = np.sort(val_rng.choice(len(self.val_split), count, replace=False))
        self.val_views = val_rng.integers(0, VIEWS, count)
        self._prepare_regularisers()

    def _prepare_regularisers(self) -> None:
        if self.settings.decoder == "mesh":
            faces = self.model.faces
            self.pairs = adjacent_face_pairs(faces).to(self.torch_device)
            self.neighbours = mean_neighbours(faces.cpu(), 642).to(self.torch_device)
            self.faces = faces
        else:
            layout = self.train_split.layout
            cameras = layout.cameras(np.arange(VIEWS))
            self.rays = view_rays(
                cameras,
                self.settings.voxel_silhouette_size,
                self.settings.ray_samples,
                layout.voxel_extent,
            ).to(self.torch_device)

    # ------------------------------------------------------------------ stepping

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The model's output for training images, the network in the run's precision.

        In bf16 the encoder runs under autocast: its convolutions and the large first layer
        are most of a mesh step's network time (batch 16 on two AMX cores: a mesh step
        228 -> 171 ms). So does a decoder that is ``bf16_tolerant`` (the voxel decoder; a
        voxel step 0.33 -> 0.25 s), while the mesh decoder's vertex heads keep float32's
        resolution. The output is float32 either way.
        """
        device_type = torch.device(self.torch_device).type
        bf16 = self.precision.name == "bf16"
        decoder = self.model.decoder
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            features = self.model.encoder(images)
        with torch.autocast(
            device_type, dtype=torch.bfloat16, enabled=bf16 and decoder.bf16_tolerant
        ):
            return decoder(features.float()).float()

    def silhouettes(self, output: torch.Tensor, views: np.ndarray) -> torch.Tensor:
        """(B, H, W) silhouettes of decoder outputs (B, ...) seen from ``views`` (B,)."""
        if self.settings.decoder == "mesh":
            from meshstyle.renderer import RenderSettings, render

            cameras = self.train_split.layout.cameras(views).to(self.torch_device)
            settings = RenderSettings(image_size=IMAGE_SIZE, backend=self.backend)
            return render(output, self.faces, None, cameras, settings=settings).silhouettes
        rays = self.rays[torch.as_tensor(views, device=self.torch_device)]
        return project_voxels(output, rays)

    def loss(self, objects, views_a, views_b) -> tuple[torch.Tensor, float, float]:
        """The loss of one batch: mean over the four (object view, render view) pairings of
        1 - soft IoU, plus the mesh regularisers.

        Returns:
            total loss (scalar tensor), silhouette term, regulariser term.
        """
        split = self.train_split
        batch = len(objects)
        images = to_float(
            np.concatenate([split.images[objects, views_a], split.images[objects, views_b]])
        )
        images = images.to(self.torch_device)
        output = self.forward(images)  # [a, b]
        both = torch.cat([output, output])  # [a, b, a, b]
        views = np.concatenate([views_a, views_a, views_b, views_b])
        predicted = self.silhouettes(both, views)
        masks = torch.cat(
            [images[:batch, 3], images[:batch, 3], images[batch:, 3], images[batch:, 3]]
        )
        if predicted.shape[-1] != masks.shape[-1]:
            masks = torch.nn.functional.adaptive_avg_pool2d(masks[:, None], predicted.shape[-1])[
                :, 0
            ]
        silhouette = soft_iou_loss(masks, predicted)
        regulariser = torch.zeros((), device=self.torch_device)
        if self.settings.decoder == "mesh":
            regulariser = self.settings.flatten_weight * flatten_loss(output, self.pairs)
            regulariser = regulariser + self.settings.laplacian_weight * laplacian_loss(
                output, self.neighbours
            )
        return silhouette + regulariser, float(silhouette.detach()), float(regulariser.detach())

    def set_learning_rate(self, rate: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = rate

    def step(self) -> tuple[float, float, float]:
        """One Adam step; returns (loss, silhouette term, regulariser term)."""
        self.model.train()
        objects, views_a, views_b = sample_batch(
            self.train_split, self.rng, self.settings.batch_size
        )
        loss, silhouette, regulariser = self.loss(objects, views_a, views_b)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {float(loss)} at step {self.step_count + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step_count += 1
        return float(loss.detach()), silhouette, regulariser

    def validate(self) -> float:
        """Mean voxel IoU on the fixed validation sample (a voxel decoder's at the best of
        :data:`THRESHOLDS`, which becomes the run's threshold)."""
        ious = score(
            self.model,
            self.val_split,
            self.val_objects,
            self.val_views,
            device=self.torch_device,
            thresholds=THRESHOLDS,
        ).mean(1)
        best = int(np.argmax(ious))
        self.threshold = THRESHOLDS[best] if self.settings.decoder == "voxel" else None
        return float(ious[best])

    # ------------------------------------------------------------------ saving

    def save(self) -> None:
        """Write config, model, checkpoint, log and curves (each atomically)."""
        from meshstyle.reconstruct.plot import plot_curves

        self.run.mkdir(parents=True, exist_ok=True)
        config = {
            "settings": self.settings.to_json(),
            "classes": list(self.train_split.classes),
            "steps": self.step_count,
            "voxel_threshold": self.threshold,
        }
        atomic_write_text(self.run / "config.json", json.dumps(config, indent=2) + "\n")
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        _save_torch(self.run / "model.pt", state)
        _save_torch(
            self.run / "checkpoint.pt",
            {
                "model": state,
                "optimizer": self.optimizer.state_dict(),
                "step": self.step_count,
                "numpy_rng": json.dumps(self.rng.bit_generator.state),
                "torch_rng": torch.get_rng_state(),
                "settings": json.dumps(self.settings.to_json()),
                "classes": list(self.train_split.classes),
            },
        )
        _write_log(self.run / "log.csv", self.rows)
        plot_curves(self.rows, self.run / "curves.png")


def train(
    data: str | Path,
    run: str | Path,
    settings: TrainSettings,
    *,
    iterations: int | None = None,
    minutes: float | None = None,
    device=None,
    on_step: Callable[[StepReport], None] | None = None,
    trainer: Trainer | None = None,
) -> TrainOutcome:
    """Train (or resume) until ``iterations`` steps in total or ``minutes`` of this call.

    Args:
        data: the data folder.
        run: the run folder.
        settings: for a new run (a resumed run keeps its own).
        iterations: stop when the run has done this many steps in total.
        minutes: stop after this much wall time in this call.
        device: ``(torch_device, backend)``.
        on_step: called after every step.
        trainer: an already opened :class:`Trainer` for ``run`` (to report on it first).

    Returns:
        The outcome. On Ctrl-C the run is saved first, then KeyboardInterrupt propagates.
    """
    if iterations is None and minutes is None:
        raise ValueError("give iterations or minutes (or both)")
    if iterations is not None and iterations < 1:
        raise ValueError(f"iterations must be >= 1; got {iterations}")
    if minutes is not None and not minutes > 0:
        raise ValueError(f"minutes must be positive; got {minutes}")
    trainer = trainer or Trainer(data, run, settings, device)
    start = time.perf_counter()
    start_step = trainer.step_count
    offset = float(trainer.rows[-1]["seconds"]) if trainer.rows else 0.0
    val_iou = None
    images_per_step = 2 * trainer.settings.batch_size

    def done() -> bool:
        if iterations is not None and trainer.step_count >= iterations:
            return True
        return minutes is not None and time.perf_counter() - start >= 60.0 * minutes

    def learning_rate() -> float:
        base = trainer.settings.learning_rate
        warmup = trainer.settings.warmup_steps
        if warmup:
            # Counted over the whole run, so a resumed run does not warm up again.
            base *= min(1.0, (trainer.step_count + 1) / warmup)
        if trainer.settings.lr_schedule == "constant":
            return base
        # The fraction of this call's budget spent: steps or minutes, whichever runs out first.
        spent = 0.0
        if iterations is not None:
            spent = (trainer.step_count - start_step) / max(iterations - start_step, 1)
        if minutes is not None:
            spent = max(spent, (time.perf_counter() - start) / (60.0 * minutes))
        return base * 0.5 * (1.0 + math.cos(math.pi * min(spent, 1.0)))

    last_save, saved_step = time.perf_counter(), None
    try:
        while not done():
            tick = time.perf_counter()
            lr_now = learning_rate()
            trainer.set_learning_rate(lr_now)
            loss, silhouette, regulariser = trainer.step()
            rate = images_per_step / max(time.perf_counter() - tick, 1e-9)
            measured = None
            if trainer.step_count % trainer.settings.eval_every == 0 or done():
                measured = val_iou = trainer.validate()
            trainer.rows.append(
                {
                    "step": trainer.step_count,
                    "seconds": f"{offset + time.perf_counter() - start:.2f}",
                    "lr": f"{lr_now:.3g}",
                    "loss": f"{loss:.6f}",
                    "silhouette": f"{silhouette:.6f}",
                    "regulariser": f"{regulariser:.6f}",
                    "images_per_s": f"{rate:.2f}",
                    "val_iou": "" if measured is None else f"{measured:.4f}",
                }
            )
            if measured is not None and (
                done() or time.perf_counter() - last_save >= SAVE_INTERVAL_S
            ):
                trainer.save()
                last_save, saved_step = time.perf_counter(), trainer.step_count
            if on_step is not None:
                on_step(StepReport(trainer.step_count, loss, silhouette, measured, rate))
    except KeyboardInterrupt:
        trainer.save()
        raise
    if saved_step != trainer.step_count:
        trainer.save()
    return TrainOutcome(
        run=trainer.run,
        steps=trainer.step_count,
        steps_now=trainer.step_count - start_step,
        seconds_now=time.perf_counter() - start,
        val_iou=val_iou,
        resumed=trainer.resumed,
    )
