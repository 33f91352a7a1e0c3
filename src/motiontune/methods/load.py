"""``load_motion``: apply a motiontune artifact to a plain diffusers UNet in anyone's script.

::

    import motiontune
    from diffusers import AnimateDiffPipeline

    pipe = AnimateDiffPipeline.from_pretrained("path/to/animatediff")
    motion = motiontune.load_motion(pipe.unet, "data/06_models/motions/my_motion")
    video = pipe("a fox running in the snow", num_frames=16).frames[0]
    motion.remove()  # or: with motiontune.load_motion(pipe.unet, path): ...

It works for every method (Motion Embeddings, VMC, MotionDirector, MotionMatcher) on both families
(ZeroScope's ``UNet3DConditionModel``, AnimateDiff's ``UNetMotionModel``), exactly as motiontune's own
generation applies the motion (each method's ``applied``), with the artifact's inference defaults unless
``inference_options`` say otherwise (``lora_scale``, ``lora_min_timestep``, ``debias``, ``value_scale``).
Sampling options (noise init, steps, guidance) are the caller's pipeline's business.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from torch import nn

from motiontune.backbone.loading import BackboneError, unet_config_hash
from motiontune.methods.artifact import MotionArtifact, load_motion_artifact


class AppliedMotion:
    """A motion applied to a UNet until :meth:`remove` (or the end of a ``with`` block) puts the UNet back exactly
    as it was (modules, parameter objects, attention processors)."""

    def __init__(self, unet: nn.Module, artifact: MotionArtifact, options: dict[str, Any], context: AbstractContextManager[Any]) -> None:
        self.unet = unet
        self.artifact = artifact
        self.options = options
        self._context: AbstractContextManager[Any] | None = context

    @property
    def method(self) -> str:
        return self.artifact.method

    @property
    def active(self) -> bool:
        return self._context is not None

    def remove(self) -> None:
        """Undo the motion (a second call does nothing)."""
        context, self._context = self._context, None
        if context is not None:
            context.__exit__(None, None, None)

    def __enter__(self) -> AppliedMotion:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "applied" if self.active else "removed"
        return f"AppliedMotion({self.method}, {state}, options={self.options})"


def check_unet_fits(artifact: MotionArtifact, unet: nn.Module, label: str = "motion") -> None:
    """Refuse, naming both sides, an artifact learnt on a UNet of another architecture (its config hash)."""
    learnt_on = artifact.manifest.get("backbone", {})
    here = unet_config_hash(unet.config)
    if learnt_on.get("unet_config_sha256") != here:
        raise BackboneError(
            f"{label} learnt on backbone '{learnt_on.get('id_or_path')}' (UNet config {str(learnt_on.get('unet_config_sha256'))[:12]}) "
            f"does not fit this {type(unet).__name__} (UNet config {here[:12]}): different architecture"
        )


def load_motion(unet: nn.Module, path: str | Path | MotionArtifact, **inference_options: Any) -> AppliedMotion:
    """Apply the motion artifact at ``path`` (a folder with ``motion.json`` + ``motion.safetensors``) to ``unet``
    (e.g. ``pipe.unet`` of a diffusers pipeline) and return a handle that undoes it (``.remove()``, or use it as a
    context manager). ``inference_options`` override the artifact's inference defaults (None values are ignored).

    Refuses an artifact whose backbone's UNet config differs from ``unet``'s, or whose tensors the UNet does not
    have. Generate at the artifact's frame count and size (``manifest``: ``num_frames``, ``height``, ``width``):
    Motion Embeddings hold one value embedding per latent position.
    """
    from motiontune.methods.base import method_class

    artifact = path if isinstance(path, MotionArtifact) else load_motion_artifact(Path(path))
    label = f"motion '{path}'" if not isinstance(path, MotionArtifact) else "motion"
    check_unet_fits(artifact, unet, label)
    cls = method_class(artifact.method)
    options = {
        **cls.inference_defaults,
        **artifact.manifest.get("inference_defaults", {}),
        **{key: value for key, value in inference_options.items() if value is not None},
    }
    context = cls.applied(unet, artifact.tensors, options)
    context.__enter__()
    return AppliedMotion(unet, artifact, options, context)
