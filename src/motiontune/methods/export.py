"""Export a learned motion to the files other tools load: a diffusers / peft LoRA file.

``export_motion(artifact_dir, output_dir)`` writes ``output_dir/pytorch_lora_weights.safetensors`` (diffusers'
``save_lora_weights`` format: keys ``unet.<module path>.lora_A.weight`` / ``.lora_B.weight``, the peft
``LoraConfig`` of the UNet adapter in the file's ``lora_adapter_metadata``) and ``output_dir/motiontune_export.json``
(what was exported, what was baked in, warnings, approximation errors). No Kedro, no MLflow.

- LoRA methods (``motiondirector``'s temporal LoRA, ``motionmatcher``): the artifact's own LoRA, with what
  motiontune's generation applies baked into ``lora_B`` (its ``lora_scale`` times the scaling generation uses,
  ``lora_alpha / r`` = 1), so that loading the file at adapter weight 1.0 reproduces motiontune's generation.
  The file says ``lora_alpha = r``. MotionMatcher's ``lora_min_timestep`` gate cannot be written in a LoRA file:
  a non-zero one is a warning (the exported LoRA acts at every timestep).
- ``vmc`` (fine-tuned projection weights): a LoRA of rank ``rank`` from the truncated SVD of each weight delta
  (fine-tuned minus the backbone's own weight; the backbone is loaded from the artifact's manifest unless one
  is given), with the relative approximation error (Frobenius over all layers, and the worst layer) reported.
- ``motion_embeddings``: not expressible as weights; refused with a :class:`ExportError` that points to
  :func:`motiontune.load_motion`.

ZeroScope's ``UNet3DConditionModel`` cannot load LoRA files through diffusers (since 0.32 it has no
``load_lora_adapter``): the same file is written, and the messages say to use :func:`motiontune.load_motion`
(or peft's ``inject_adapter_in_model`` + ``set_peft_model_state_dict``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from motiontune.errors import UserError
from motiontune.io.atomic import write_atomically
from motiontune.methods.artifact import MotionArtifact, load_motion_artifact
from motiontune.methods.lora import LORA_A, LORA_B, LoraError, lora_module_names

FORMATS = ("diffusers",)
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' LORA_WEIGHT_NAME_SAFE
EXPORT_RECORD = "motiontune_export.json"
UNET_PREFIX = "unet"  # diffusers' StableDiffusionLoraLoaderMixin.unet_name
DEFAULT_SVD_RANK = 64  # VMC: ZeroScope's temporal projections are 320-1280 wide; the tiny ones (32, 64) come out exact
LORA_METHODS = ("motiondirector", "motionmatcher")


class ExportError(ValueError, UserError):
    """A motion that cannot be exported as asked (format, method, backbone)."""


@dataclass
class ExportResult:
    """What :func:`export_motion` wrote: the LoRA file, its record (also in ``motiontune_export.json``) and the
    lines to show a user (warnings first)."""

    weights_path: Path
    record: dict[str, Any]
    messages: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return list(self.record.get("warnings", []))


def load_motion_command(source: str) -> str:
    """How to apply ``source`` (an artifact folder, or a registry URI whose motion folder is downloaded first)."""
    if source.startswith("models:/"):
        return (f"motiontune.load_motion(pipe.unet, folder), folder = the 'motion' folder of "
                f"mlflow.artifacts.download_artifacts({source!r})")
    return f"motiontune.load_motion(pipe.unet, {source!r})"


def export_motion(
    motion: str | Path | MotionArtifact,
    output: str | Path,
    format: str = "diffusers",  # noqa: A002 - the CLI's --format
    rank: int | None = None,
    backbone: Any = None,
    label: str | None = None,
    **inference_options: Any,
) -> ExportResult:
    """Export the motion artifact ``motion`` (its folder, or a loaded :class:`MotionArtifact`) to ``output``.

    ``format``: ``diffusers`` (the only one). ``rank``: the LoRA rank of a VMC export (default
    :data:`DEFAULT_SVD_RANK`; capped per layer at the layer's smaller side). ``backbone`` (VMC only): the
    backbone whose weights the deltas are taken from, a loaded :class:`~motiontune.backbone.loading.Backbone`, a
    UNet, or a folder / hub id to load; default: the one recorded in the artifact's manifest. ``inference_options``
    (``lora_scale``, ``lora_min_timestep``) override the artifact's inference defaults, as for generation.
    ``label``: how messages name the motion (default: its folder), e.g. the registry URI it came from.
    """
    if format not in FORMATS:
        raise ExportError(f"export format '{format}' is not one of {list(FORMATS)}")
    source = label or (str(motion) if not isinstance(motion, MotionArtifact) else "<artifact>")
    artifact = motion if isinstance(motion, MotionArtifact) else load_motion_artifact(Path(motion))
    method = artifact.method
    family = _family(artifact)
    if method == "motion_embeddings":
        raise ExportError(
            f"motion '{source}' (motion_embeddings) cannot be exported as LoRA weights: motion embeddings enter the "
            f"temporal attentions as inputs, not as weight updates; apply it in your script with "
            f"{load_motion_command(source)}"
        )
    options = _inference_options(artifact, inference_options)
    warnings: list[str] = []
    record: dict[str, Any] = {
        "format": format,
        "file": LORA_WEIGHT_NAME,
        "motion": source,
        "method": method,
        "method_version": artifact.manifest.get("method_version"),
        "backbone": dict(artifact.manifest.get("backbone", {})),
        "family": family,
        "num_frames": artifact.manifest.get("num_frames"),
        "height": artifact.manifest.get("height"),
        "width": artifact.manifest.get("width"),
    }
    if method in LORA_METHODS:
        tensors, baked = _baked_lora(artifact, options, warnings)
        record["baked"] = baked
    elif method == "vmc":
        tensors, svd = _vmc_lora(artifact, DEFAULT_SVD_RANK if rank is None else int(rank), backbone)
        record["svd"] = svd
        record["baked"] = {"factor": 1.0, "note": "VMC has no scale option: the weight deltas as they are"}
    else:
        raise ExportError(f"motion '{source}': method '{method}' has no {format} export (exportable: {[*LORA_METHODS, 'vmc']})")
    names = _module_names(tensors)
    ranks = {int(tensors[f"{name}.{LORA_A}"].shape[0]) for name in names}
    if len(ranks) != 1:
        raise ExportError(f"motion '{source}': LoRA ranks {sorted(ranks)} differ between layers; one rank per file")
    r = ranks.pop()
    # The peft LoraConfig of the UNet adapter, as diffusers reads it back (LoraConfig(**metadata)).
    adapter_metadata = {"r": r, "lora_alpha": r, "target_modules": names, "lora_dropout": 0.0, "bias": "none"}
    record["lora"] = {"r": r, "lora_alpha": r, "layers": len(names), "key_prefix": f"{UNET_PREFIX}."}
    if family == "unet3d":
        record["load_with"] = (
            f"ZeroScope's UNet3DConditionModel cannot load LoRA files in diffusers (no load_lora_adapter since 0.32): "
            f"use {load_motion_command(source)}, or peft's inject_adapter_in_model + set_peft_model_state_dict with this file"
        )
    else:
        record["load_with"] = f"pipe.load_lora_weights({str(Path(output))!r}, adapter_name='motion')"
    record["warnings"] = warnings
    output = Path(output)
    weights_path = _write_lora_file(output, tensors, adapter_metadata)
    record_text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    write_atomically(output / EXPORT_RECORD, lambda path: path.write_text(record_text, encoding="utf-8"))
    messages = [f"warning: {line}" for line in warnings]
    if "svd" in record:
        svd = record["svd"]
        messages.append(
            f"vmc -> LoRA rank {svd['rank']}: relative error {svd['relative_error']:.3e} over all {svd['layers']} layers "
            f"(Frobenius), worst layer {svd['max_layer_relative_error']:.3e} ({svd['max_layer']})"
        )
    messages.append(f"wrote {weights_path} ({len(names)} LoRA layers, rank {r}); load with {record['load_with']}")
    return ExportResult(weights_path=weights_path, record=record, messages=messages)


def _family(artifact: MotionArtifact) -> str:
    recorded = artifact.manifest.get("backbone", {}).get("family")
    if recorded:
        return str(recorded)
    return "animatediff" if any(".motion_modules." in key for key in artifact.tensors) else "unet3d"


def _inference_options(artifact: MotionArtifact, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Generation's options: the method's defaults, the artifact's recorded ones, then the given ones (not None)."""
    from motiontune.methods.base import method_class

    cls = method_class(artifact.method)
    return {
        **cls.inference_defaults,
        **artifact.manifest.get("inference_defaults", {}),
        **{key: value for key, value in overrides.items() if value is not None},
    }


def _module_names(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    try:
        names = lora_module_names(tensors)
    except LoraError as error:
        raise ExportError(str(error)) from None
    missing = [name for name in names if f"{name}.{LORA_A}" not in tensors or f"{name}.{LORA_B}" not in tensors]
    if missing:
        raise ExportError(f"LoRA tensors lack lora_A or lora_B for {missing[:3]}")
    return names


def _baked_lora(artifact: MotionArtifact, options: Mapping[str, Any], warnings: list[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The artifact's LoRA with generation's factor (``lora_scale`` x generation's scaling) multiplied into B."""
    names = _module_names(artifact.tensors)
    ranks = {int(artifact.tensors[f"{name}.{LORA_A}"].shape[0]) for name in names}
    r = max(ranks)
    # Generation (methods.lora.lora_applied) builds its adapter with lora_alpha = r: scaling 1 whatever the
    # manifest says. Bake exactly that, and say so if the recorded config implies another scaling.
    generation_scaling = 1.0
    recorded = artifact.manifest.get("hyperparameters", {}).get("lora_config") or {}
    if recorded.get("r") and recorded.get("lora_alpha") is not None:
        recorded_scaling = float(recorded["lora_alpha"]) / float(recorded["r"])
        if not math.isclose(recorded_scaling, generation_scaling):
            warnings.append(
                f"the manifest's lora_config has lora_alpha / r = {recorded_scaling:g}, but motiontune's generation applies "
                f"the LoRA with scaling {generation_scaling:g}: the export bakes what generation applies"
            )
    else:
        recorded_scaling = None
    lora_scale = float(options.get("lora_scale", 1.0))
    factor = lora_scale * generation_scaling
    min_timestep = int(options.get("lora_min_timestep", 0) or 0)
    if min_timestep != 0:
        warnings.append(
            f"{artifact.method} applies its LoRA only at timesteps >= {min_timestep} (lora_min_timestep); a LoRA file "
            f"cannot express this gate, so the exported LoRA acts at every timestep and diffusers' output will differ "
            f"from motiontune's (motiontune.load_motion keeps the gate)"
        )
    tensors: dict[str, torch.Tensor] = {}
    for name in names:
        tensors[f"{name}.{LORA_A}"] = artifact.tensors[f"{name}.{LORA_A}"].detach().float().contiguous()
        tensors[f"{name}.{LORA_B}"] = (artifact.tensors[f"{name}.{LORA_B}"].detach().float() * factor).contiguous()
    baked = {
        "lora_scale": lora_scale,
        "scaling": generation_scaling,
        "recorded_lora_alpha_over_r": recorded_scaling,
        "factor": factor,
        "into": "lora_B",
        "lora_min_timestep": min_timestep,
        "note": "load at adapter weight 1.0 to get motiontune's generation; the file's lora_alpha = r (scaling 1)",
        "source_rank": r,
    }
    return tensors, baked


def _backbone_unet(artifact: MotionArtifact, backbone: Any) -> nn.Module:
    """The UNet whose own weights VMC's deltas are taken from, checked against the artifact's UNet config."""
    from motiontune.backbone.loading import Backbone, load_backbone, unet_config_hash

    recorded = artifact.manifest.get("backbone", {})
    if isinstance(backbone, Backbone):
        unet = backbone.unet
    elif isinstance(backbone, nn.Module):
        unet = backbone
    else:
        source = backbone if backbone is not None else recorded.get("id_or_path")
        if not source:
            raise ExportError("vmc export needs the backbone its motion was learnt on: the manifest names none; pass --backbone")
        adapter = None if backbone is not None else recorded.get("motion_adapter")
        unet = load_backbone(
            source, revision=None if backbone is not None else recorded.get("revision"), device="cpu",
            motion_adapter=adapter, motion_adapter_revision=recorded.get("motion_adapter_revision") if adapter else None,
        ).unet
    here = unet_config_hash(unet.config)
    if recorded.get("unet_config_sha256") and recorded["unet_config_sha256"] != here:
        raise ExportError(
            f"vmc motion learnt on backbone '{recorded.get('id_or_path')}' (UNet config {str(recorded['unet_config_sha256'])[:12]}) "
            f"does not fit the backbone given for its deltas (UNet config {here[:12]}): different architecture"
        )
    return unet


def _vmc_lora(artifact: MotionArtifact, rank: int, backbone: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """LoRA tensors of rank ``rank`` from the truncated SVD of each fine-tuned weight minus the backbone's."""
    if rank < 1:
        raise ExportError(f"--rank: must be at least 1, got {rank}")
    unet = _backbone_unet(artifact, backbone)
    own = dict(unet.named_parameters())
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    layer_errors: dict[str, float] = {}
    residual_sq = delta_sq = 0.0
    for key, tuned in artifact.tensors.items():
        if key not in own:
            raise ExportError(f"vmc motion: the backbone has no parameter '{key}'")
        base = own[key].detach().to("cpu", torch.float64)
        delta = tuned.detach().to("cpu", torch.float64) - base
        if key.endswith(".bias"):
            if delta.abs().max().item() > 0:
                raise ExportError(f"vmc motion: '{key}' changed a bias, which a LoRA cannot express")
            continue
        if not key.endswith(".weight") or delta.ndim != 2:
            raise ExportError(f"vmc motion: '{key}' is not a Linear weight")
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        k = min(rank, s.numel())
        root = s[:k].sqrt()
        lora_b, lora_a = u[:, :k] * root, root[:, None] * vh[:k]  # B (out, k), A (k, in); B @ A = U_k S_k V_k^T
        residual = torch.linalg.matrix_norm(delta - lora_b @ lora_a).item() ** 2
        total = torch.linalg.matrix_norm(delta).item() ** 2
        residual_sq, delta_sq = residual_sq + residual, delta_sq + total
        layer = key[: -len(".weight")]
        layer_errors[layer] = math.sqrt(residual / total) if total > 0 else 0.0
        factors[layer] = (lora_a, lora_b)
    if not factors:
        raise ExportError("vmc motion: no weight to export")
    file_rank = max(a.shape[0] for a, _ in factors.values())
    tensors: dict[str, torch.Tensor] = {}
    for layer, (lora_a, lora_b) in factors.items():
        pad = file_rank - lora_a.shape[0]  # a layer narrower than the rank: zero rows / columns, exact
        lora_a = torch.cat([lora_a, lora_a.new_zeros(pad, lora_a.shape[1])]) if pad else lora_a
        lora_b = torch.cat([lora_b, lora_b.new_zeros(lora_b.shape[0], pad)], dim=1) if pad else lora_b
        tensors[f"{layer}.{LORA_A}"] = lora_a.float().contiguous()
        tensors[f"{layer}.{LORA_B}"] = lora_b.float().contiguous()
    worst = max(layer_errors, key=layer_errors.__getitem__)
    svd = {
        "rank": file_rank,
        "requested_rank": rank,
        "layers": len(factors),
        "relative_error": math.sqrt(residual_sq / delta_sq) if delta_sq > 0 else 0.0,
        "max_layer_relative_error": layer_errors[worst],
        "max_layer": worst,
        "layer_relative_errors": layer_errors,
        "norm": "Frobenius: ||delta - B A|| / ||delta||, over all layers together and per layer",
    }
    return tensors, svd


def _write_lora_file(output: Path, tensors: Mapping[str, torch.Tensor], adapter_metadata: Mapping[str, Any]) -> Path:
    """diffusers' own writer (``save_lora_weights`` with ``unet_lora_adapter_metadata``), renamed into place."""
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    def write(temporary: Path) -> None:
        StableDiffusionLoraLoaderMixin.save_lora_weights(
            save_directory=str(temporary.parent),
            unet_lora_layers=dict(tensors),
            unet_lora_adapter_metadata=dict(adapter_metadata),
            weight_name=temporary.name,
            safe_serialization=True,
        )

    return write_atomically(output / LORA_WEIGHT_NAME, write)
