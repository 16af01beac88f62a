"""The training loop shared by videos and stills: L1 loss, Adam, validation, checkpoints, resume.

Outputs, for ``-o model.pt``:

- ``model.pt``: the model with the lowest validation loss so far (what ``wormclean mask`` uses);
- ``model.last.pt``: the latest state, with optimizer state, step and random state, for ``--resume``;
- ``model.log.csv``: one row per validation; ``model.loss.png``: the loss curves.

The model files and the plot are rewritten atomically and the log only appended to, so an interrupted run
always leaves complete files behind.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from wormclean.data.shards import ProcessGroup
from wormclean.data.training_data import TrainingData
from wormclean.errors import SettingsError, TrainingError
from wormclean.io.atomic import atomic_output, check_folder_writable
from wormclean.memory import keep_freed_memory
from wormclean.model.device import resolve_device
from wormclean.model.modelfile import ModelFile, Normalisation, load_model, save_model
from wormclean.model.unet import UNet, UNetConfig
from wormclean.settings import TrainSettings
from wormclean.train.distributed import any_rank, parallel, process_group

log = logging.getLogger(__name__)

LOG_COLUMNS = ["step", "elapsed_s", "train_loss", "val_loss", "identity_val_loss", "patches_per_s"]


@dataclass
class TrainProgress:
    """What the trainer reports after each step."""

    step: int
    total_steps: int
    train_loss: float
    val_loss: float | None
    patches_per_s: float


@dataclass
class TrainResult:
    """Where the outputs went and the final figures."""

    best_path: Path
    last_path: Path
    log_path: Path
    plot_path: Path
    step: int
    best_val_loss: float | None
    identity_val_loss: float | None
    interrupted: bool = False


def output_paths(output: Path) -> dict[str, Path]:
    """The files a run writes next to ``output`` (``model.pt`` -> ``model.last.pt``, ``model.log.csv``...)."""
    output = Path(output)
    stem = output.with_suffix("")
    return {
        "best": output,
        "last": stem.with_name(stem.name + ".last.pt"),
        "log": stem.with_name(stem.name + ".log.csv"),
        "plot": stem.with_name(stem.name + ".loss.png"),
    }


def _build_net(data: TrainingData, settings: TrainSettings, start: ModelFile | None) -> UNet:
    if start is None:
        config = UNetConfig(
            in_channels=data.in_channels,
            out_channels=data.in_channels,
            width=settings.width if settings.width is not None else 48,
            depth=settings.depth if settings.depth is not None else 5,
        )
        torch.manual_seed(settings.seed)
        return UNet(config)
    config = start.config
    source = start.path
    for name in ("width", "depth"):
        asked = getattr(settings, name)
        if asked is not None and asked != getattr(config, name):
            raise SettingsError(f"{source} has {name} {getattr(config, name)}, but --{name} {asked} was given")
    if config.in_channels != data.in_channels:
        raise SettingsError(
            f"{source} takes {config.in_channels} channel(s), the training data has {data.in_channels}"
        )
    if start.normalisation.bit_depth != data.normalisation.bit_depth:
        raise SettingsError(
            f"{source} was trained on {start.normalisation.bit_depth}-bit data, these inputs are "
            f"{data.normalisation.bit_depth}-bit"
        )
    return start.net


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over the pixels whose target is a number: NaN targets (the immobile worms of
    :class:`~wormclean.data.patches.LaggedPatchDataset`) are left out of the loss."""
    valid = ~torch.isnan(target)
    if bool(valid.all()):
        return torch.mean(torch.abs(output - target))
    return torch.abs(output - target)[valid].mean() if bool(valid.any()) else (output * 0).sum()


def _validate(
    net: UNet, batches, normalisation: Normalisation, device: torch.device, use_amp: bool
) -> tuple[float, float | None]:
    """Mean L1 loss over the fixed validation batches, and the sign of (input - output) where they differ.

    The sign (a mean weighted by size, in [-1, 1]) says whether the objects the net removes are darker (< 0)
    or brighter (> 0) than what it puts in their place.
    """
    net.eval()
    losses, signed = [], []
    with torch.no_grad():
        for source, target in batches:
            source, target = (normalisation.forward(t.to(device)) for t in (source, target))
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                output = net(source).float()
            losses.append(l1_loss(output, target).item())
            difference = source - output
            # Objects the net removes are outliers of the difference; noise is symmetric and small.
            spread = difference.abs().median()
            strong = difference[difference.abs() > 6 * spread]
            if strong.numel():
                signed.append((strong.sum() / strong.abs().sum()).item())
    net.train()
    return float(np.mean(losses)), float(np.mean(signed)) if signed else None


def _identity_loss(batches, normalisation: Normalisation) -> float | None:
    """The validation loss of a net that returns its input: what learning has to beat."""
    if not batches:
        return None
    losses = [l1_loss(normalisation.forward(s), normalisation.forward(t)).item() for s, t in batches]
    return float(np.mean(losses))


def _append_log(path: Path, row: dict, fresh: bool) -> None:
    mode = "w" if fresh else "a"
    with open(path, mode, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        if fresh:
            writer.writeheader()
        writer.writerow({key: row.get(key, "") for key in LOG_COLUMNS})


def plot_losses(log_path: Path, plot_path: Path) -> None:
    """Draw training and validation loss against step (and the identity's validation loss) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    axes.plot(steps, [float(r["train_loss"]) for r in rows], label="training L1")
    validation = [(s, float(r["val_loss"])) for s, r in zip(steps, rows) if r["val_loss"]]
    if validation:
        axes.plot(*zip(*validation), marker="o", markersize=3, label="validation L1")
    identity = [float(r["identity_val_loss"]) for r in rows if r["identity_val_loss"]]
    if identity:
        axes.axhline(identity[-1], color="grey", linestyle="--", label="identity (input as output)")
    axes.set_xlabel("step")
    axes.set_ylabel("L1 loss (normalised units)")
    axes.set_yscale("log")
    save_plot(figure, axes, plot_path)


def save_plot(figure, axes, path: Path) -> None:
    """Finish a one-axes loss plot (legend, grid) and write it as a PNG, atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_output(path, overwrite=True) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)


def train(
    data: TrainingData,
    settings: TrainSettings,
    output: Path,
    init: Path | None = None,
    resume: Path | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Train a U-Net on ``data`` with an L1 loss and write the model files next to ``output``.

    Training stops after ``settings.steps`` steps or ``settings.time_limit_s`` seconds, whichever comes first.
    ``init`` starts from an existing model's weights (fine-tuning); ``resume`` continues a run from its
    ``.last.pt`` checkpoint: weights, optimizer state, step, best loss and random state. The data stream after
    a resume is seeded from the run's seed and the step it resumes at. Ctrl-C saves the latest state and
    returns with ``interrupted`` set.

    Raises :class:`~wormclean.errors.OutputError` before any training if the output folder is missing or not
    writable, and :class:`~wormclean.errors.TrainingError` if the loss or the weights stop being finite (the
    checkpoints saved before are kept; nothing that diverged is saved).

    Under torchrun every process calls this (:mod:`wormclean.train.distributed`): each trains on its share of
    the data with ``settings.batch_size`` patches per step, the default learning rate follows the batch of all
    processes together, and rank 0 alone writes the outputs.
    """
    with process_group(resolve_device(settings.device)) as (group, device):
        if device.type == "cpu":
            keep_freed_memory()  # each step's feature maps, reused rather than faulted in afresh
        return _train(data, settings, output, init, resume, progress, group, device)


def _train(
    data: TrainingData,
    settings: TrainSettings,
    output: Path,
    init: Path | None,
    resume: Path | None,
    progress: Callable[[TrainProgress], None] | None,
    group: ProcessGroup,
    device: torch.device,
) -> TrainResult:
    paths = output_paths(output)
    check_folder_writable(paths["best"].parent)
    use_amp = device.type == "cuda"
    start = load_model(resume or init) if (resume or init) else None
    if resume and start.training is None:
        raise SettingsError(f"{resume} holds no training state; resume from the .last.pt file of a run")
    net = _build_net(data, settings, start).to(device)
    normalisation = start.normalisation if start is not None else data.normalisation
    if use_amp:
        net = net.to(memory_format=torch.channels_last)
    learning_rate = settings.lr * group.world_size if settings.learning_rate is None else settings.learning_rate
    model = parallel(net, group, device)
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, best_val, history_fresh = 0, math.inf, True
    if resume:
        state = start.training
        optimizer.load_state_dict(state["optimizer"])
        for param_group in optimizer.param_groups:
            param_group["lr"] = learning_rate
        step, best_val = int(state["step"]), float(state["best_val_loss"])
        torch.set_rng_state(state["torch_rng"])
        history_fresh = not paths["log"].exists()
        if step >= settings.steps:
            raise SettingsError(f"{resume} is already at step {step}; ask for more --steps to continue")
    data.dataset.seed = settings.seed + step
    identity = _identity_loss(data.validation, normalisation)
    loader = DataLoader(
        data.dataset,
        batch_size=settings.batch_size,
        num_workers=settings.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=settings.workers > 0,
    )
    metadata = dict(data.metadata)
    metadata.update(
        {
            "train_settings": asdict(settings),
            "learning_rate": learning_rate,
            "identity_validation_loss": identity,
            "initialised_from": str(init) if init else (
                start.metadata.get("initialised_from") if start else None
            ),
        }
    )
    started = time.perf_counter()
    window_start, window_patches = started, 0
    running, val_loss, rate, interrupted = None, None, 0.0, False

    saved_step = step if resume else None

    def diverged(what: str) -> TrainingError:
        kept = f"{paths['last']} keeps step {saved_step}" if saved_step is not None else "no checkpoint was saved"
        return TrainingError(
            f"training diverged at step {step}: {what}; {kept}. Try a smaller --learning-rate "
            f"(this run used {learning_rate:g})"
        )

    def save(current_val: float | None, sign: float | None, periodic: bool = True) -> None:
        """Write ``.last.pt``; also the best model when validation improved (or there is no validation)."""
        nonlocal best_val, saved_step
        if not all(bool(torch.isfinite(parameter).all()) for parameter in net.parameters()):
            raise diverged("the weights are no longer finite numbers")
        if current_val is not None and not math.isfinite(current_val):
            raise diverged(f"the validation loss is {current_val}")
        improved = periodic and (current_val is None or current_val < best_val)
        if improved and current_val is not None:
            best_val = current_val
        metadata.update({"steps": step, "validation_loss": current_val, "saved_at": _now()})
        if sign and metadata.get("kind") == "video":  # no evidence (None or 0): keep what was there
            metadata["dark_worms"] = sign < 0
        training_state = {
            "optimizer": optimizer.state_dict(),
            "step": step,
            "best_val_loss": best_val,
            "torch_rng": torch.get_rng_state(),
        }
        if group.is_main:
            save_model(paths["last"], net, normalisation, metadata, training=training_state)
            if improved or not paths["best"].exists():
                save_model(paths["best"], net, normalisation, metadata)
        saved_step = step

    net.train()
    try:
        for source, target in loader:
            source = normalisation.forward(source.to(device, non_blocking=True))
            target = normalisation.forward(target.to(device, non_blocking=True))
            if use_amp:
                source = source.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                loss = l1_loss(model(source).float(), target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            window_patches += source.shape[0]
            value = loss.item()
            if not math.isfinite(value):
                raise diverged(f"the training loss is {value}")
            running = value if running is None else 0.95 * running + 0.05 * value
            now = time.perf_counter()
            if now - window_start > 2 or step == settings.steps:
                rate = window_patches / (now - window_start)
                window_start, window_patches = now, 0
            out_of_time = settings.time_limit_s is not None and any_rank(
                now - started >= settings.time_limit_s, group, device
            )
            done = step >= settings.steps or out_of_time
            if step % settings.validate_every == 0 or done:
                val_loss, sign = None, None
                if data.validation:
                    val_loss, sign = _validate(net, data.validation, normalisation, device, use_amp)
                save(val_loss, sign)
                if group.is_main:
                    _append_log(
                        paths["log"],
                        {
                            "step": step,
                            "elapsed_s": f"{now - started:.1f}",
                            "train_loss": f"{running:.6f}",
                            "val_loss": f"{val_loss:.6f}" if val_loss is not None else "",
                            "identity_val_loss": f"{identity:.6f}" if identity is not None else "",
                            "patches_per_s": f"{rate:.2f}",
                        },
                        fresh=history_fresh,
                    )
                    plot_losses(paths["log"], paths["plot"])
                history_fresh = False
            if progress:
                progress(TrainProgress(step, settings.steps, running, val_loss, rate))
            if done:
                break
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted at step %d; saving %s", step, paths["last"])
        save(None, None, periodic=False)
    return TrainResult(
        best_path=paths["best"],
        last_path=paths["last"],
        log_path=paths["log"],
        plot_path=paths["plot"],
        step=step,
        best_val_loss=None if math.isinf(best_val) else best_val,
        identity_val_loss=identity,
        interrupted=interrupted,
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


