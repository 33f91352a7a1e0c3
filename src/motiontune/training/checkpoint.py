"""The one resumable training checkpoint of the project, written by every training loop (the motion methods'
loop, the world backbone's stages).

    digest = fingerprint(method.name, options, settings, tensors=(latents, prompt_embeds))
    save_checkpoint(path, digest, step, weights=parameter_weights(parameters), optimizer=optimizer,
                    generator=generator, loss_history=history, scaler=scaler)
    resumed = load_checkpoint(path, digest, weights=..., optimizer=..., generator=..., scaler=...)  # None: start at 0

One safetensors file, written atomically (:func:`motiontune.io.atomic.write_atomically`: absent, the previous
checkpoint or the complete new one, never half-written); no pickle anywhere. It holds

- tensors: the weights (``parameter.<i>`` for a list of tensors, ``<module>.<state_dict key>`` for modules),
  the optimizer state (``optimizer.<i>.<key>``, ``i`` the index in the optimizer's ``state_dict``), the torch
  generator's state (``rng_state``), the loss history (``loss_history``, float64), the fp16 GradScaler's scale
  and growth tracker (``grad_scaler.*``) and whatever else the loop keeps (EMA weights, ...);
- metadata (JSON strings): ``step``, ``fingerprint``, the optimizer's ``param_groups`` (learning rate and the
  other hyperparameters, the tensors' ids left out) and the GradScaler's settings.

A checkpoint resumes only a run with the same :func:`fingerprint` (what must match for the resumed run to
equal an unbroken one: settings and inputs); one of another run is ignored with a warning, never loaded.

The generator is the loops' only source of randomness kept across steps: they draw every noise, timestep and
batch from it (no numpy random state is used), and where a module draws from torch's global generator
(dropout) the loop seeds that per step instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from motiontune.io.atomic import write_atomically

logger = logging.getLogger(__name__)

RNG_STATE = "rng_state"
LOSS_HISTORY = "loss_history"
OPTIMIZER_PREFIX = "optimizer."
PARAM_GROUPS = "param_groups"
# fp16 GradScaler state in a checkpoint: scale and growth tracker as tensors, the rest as metadata.
GRAD_SCALER_SCALE = "grad_scaler.scale"
GRAD_SCALER_GROWTH_TRACKER = "grad_scaler.growth_tracker"
GRAD_SCALER_SETTINGS = "grad_scaler"


def fingerprint(*parts: Any, tensors: Iterable[torch.Tensor] = ()) -> str:
    """sha256 of ``parts`` as JSON (a dataclass as its fields, keys sorted, anything else JSON cannot write as
    its ``str``), then of each of ``tensors`` as float32 bytes: identifies what a resumed run must share."""
    blob = json.dumps([asdict(part) if is_dataclass(part) and not isinstance(part, type) else part for part in parts],
                      sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode("utf-8"))
    for tensor in tensors:
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def parameter_weights(parameters: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """A list of trainable tensors as checkpoint weights: ``parameter.<index>``."""
    return {f"parameter.{index}": parameter for index, parameter in enumerate(parameters)}


def module_weights(modules: Mapping[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """Modules as checkpoint weights: ``<label>.<state_dict key>`` (parameters and persistent buffers, the live
    tensors, so that loading copies into them)."""
    return {f"{label}.{name}": value for label, module in modules.items() for name, value in module.state_dict(keep_vars=True).items()}


@dataclass
class Resumed:
    """What :func:`load_checkpoint` restored: the step to go on from, the loss history up to it, and the
    checkpoint's other tensors (the ``extra`` given to :func:`save_checkpoint`)."""

    step: int
    loss_history: list[float] = field(default_factory=list)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


def save_checkpoint(
    path: Path,
    fingerprint: str,
    step: int,
    *,
    weights: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    loss_history: Sequence[float],
    scaler: torch.amp.GradScaler | None = None,
    extra: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Write the training state after ``step`` steps to ``path`` atomically (see the module's docstring)."""
    tensors: dict[str, torch.Tensor] = {RNG_STATE: generator.get_state()}
    tensors[LOSS_HISTORY] = torch.tensor(list(loss_history), dtype=torch.float64)
    tensors.update({name: value.detach().cpu().contiguous() for name, value in weights.items()})
    optimizer_state = optimizer.state_dict()
    for index, state in optimizer_state["state"].items():
        for key, value in state.items():
            tensors[f"{OPTIMIZER_PREFIX}{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    scaler_tensors, scaler_metadata = grad_scaler_state(scaler)
    tensors.update(scaler_tensors)
    tensors.update({name: value.detach().cpu().contiguous() for name, value in (extra or {}).items()})
    groups = [{key: value for key, value in group.items() if key != "params"} for group in optimizer_state["param_groups"]]
    metadata = {"step": str(step), "fingerprint": fingerprint, PARAM_GROUPS: json.dumps(groups), **scaler_metadata}
    write_atomically(path, lambda temporary: save_file(tensors, str(temporary), metadata=metadata))
    logger.debug("checkpoint at step %d -> %s", step, path)


def load_checkpoint(
    path: Path,
    fingerprint: str,
    *,
    weights: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    scaler: torch.amp.GradScaler | None = None,
) -> Resumed | None:
    """Restore the training state saved at ``path`` into ``weights`` (copied in place), ``optimizer``,
    ``generator`` and ``scaler``; None, all of them untouched, when there is no file or it was made by a run
    with another fingerprint (warned)."""
    path = Path(path)
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("fingerprint") != fingerprint:
        logger.warning("Ignoring checkpoint %s: it was made with other settings or inputs", path)
        return None
    tensors = load_file(str(path))
    missing = sorted(name for name in weights if name not in tensors)
    if missing:
        raise ValueError(f"checkpoint {path} lacks weights {missing[:5]} of a run with its fingerprint")
    with torch.no_grad():
        for name, value in weights.items():
            value.copy_(tensors.pop(name))
    _restore_optimizer(optimizer, tensors, metadata)
    generator.set_state(tensors.pop(RNG_STATE))
    if scaler is not None and not restore_grad_scaler(scaler, tensors, metadata):
        logger.warning("Checkpoint %s holds no GradScaler state: the fp16 loss scale starts afresh", path)
    for key in (GRAD_SCALER_SCALE, GRAD_SCALER_GROWTH_TRACKER):
        tensors.pop(key, None)
    history = tensors.pop(LOSS_HISTORY).tolist() if LOSS_HISTORY in tensors else []
    step = int(metadata["step"])
    logger.info("Resuming from %s at step %d", path, step)
    return Resumed(step=step, loss_history=history, extra=tensors)


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """Pop the ``optimizer.*`` tensors into the optimizer's state; its param groups' settings from the metadata
    (a checkpoint written before they were saved keeps the current ones)."""
    current = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key in [key for key in tensors if key.startswith(OPTIMIZER_PREFIX)]:
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = tensors.pop(key)
    if PARAM_GROUPS in metadata:
        for group, saved in zip(current["param_groups"], json.loads(metadata[PARAM_GROUPS])):
            group.update(saved)
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})


def grad_scaler_state(scaler: torch.amp.GradScaler | None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A GradScaler's state for a safetensors checkpoint: ``(tensors, metadata)``, both empty without one.

    Tensors: the current scale (float64) and growth tracker (int64); metadata: growth factor, backoff factor
    and growth interval (JSON). Call after ``scaler.update()``.
    """
    if scaler is None or not scaler.is_enabled():
        return {}, {}
    state = scaler.state_dict()
    tensors = {
        GRAD_SCALER_SCALE: torch.tensor(float(state["scale"]), dtype=torch.float64),
        GRAD_SCALER_GROWTH_TRACKER: torch.tensor(int(state["_growth_tracker"]), dtype=torch.int64),
    }
    settings = {key: state[key] for key in ("growth_factor", "backoff_factor", "growth_interval")}
    return tensors, {GRAD_SCALER_SETTINGS: json.dumps(settings, sort_keys=True)}


def restore_grad_scaler(scaler: torch.amp.GradScaler | None, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bool:
    """Load what :func:`grad_scaler_state` saved into ``scaler``; False (scaler untouched) when there is no
    scaler or the checkpoint holds no scaler state (one made without fp16, or before this was saved)."""
    if scaler is None or not scaler.is_enabled() or GRAD_SCALER_SCALE not in tensors or GRAD_SCALER_SETTINGS not in metadata:
        return False
    settings = json.loads(metadata[GRAD_SCALER_SETTINGS])
    scaler.load_state_dict({
        "scale": float(tensors[GRAD_SCALER_SCALE]),
        "growth_factor": float(settings["growth_factor"]),
        "backoff_factor": float(settings["backoff_factor"]),
        "growth_interval": int(settings["growth_interval"]),
        "_growth_tracker": int(tensors[GRAD_SCALER_GROWTH_TRACKER]),
    })
    return True
