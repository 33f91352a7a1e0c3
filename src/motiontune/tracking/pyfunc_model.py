"""A learned motion as an ``mlflow.pyfunc`` model, logged *as code* (MLflow "models from code": no pickle).

:func:`motiontune.tracking.registry.register_motion` logs this file as the model's ``python_model``; MLflow
copies it into the model and runs it on load, which ends with ``mlflow.models.set_model(MotionModel())``.
Do not import this module from other modules (importing it calls ``set_model``).

The model's artifacts are the motion files only:

- ``motion``: the artifact folder (``motion.safetensors`` + ``motion.json``);
- ``reference_inversion`` (optional): the reference video's ``latents``, base-model DDIM inversion
  ``inverted_latents`` and its ``inversion_steps`` (small tensors), so the ``inversion``, ``blend`` and ``lowfreq``
  noise inits work from the registry alone (a customised inversion is computed from the latents).

The backbone is referenced, never copied: ``motion.json`` names it (id or path, revision, UNet config
sha256); the model config adds the absolute path of a local backbone folder as a fallback.

``predict(model_input, params)``:

- ``model_input``: prompts, as a list of str, one str, or a DataFrame with a ``prompt`` column;
- ``params`` (all optional): every field of ``motiontune.generation.generate.GenerationConfig`` with its
  default (``seed`` 0, ``negative_prompt``, ``lowfreq_factor`` 4, ...; those defaulting to null, such as
  ``steps`` / ``guidance_scale`` / ``noise_init`` / ``debias`` / ``value_scale`` / ``blend_strength`` /
  ``lora_scale``, take the motion's inference defaults; 50 steps and guidance 10 for a motion that records none),
  except ``progress_bar`` (false); and ``backbone`` (a folder or hub id that overrides the recorded one),
  ``revision``, ``device`` (``auto``), ``dtype`` (``float32``), ``output_dir``, ``fps`` (8.0)
  (``registry.motion_signature`` derives the model's params from these);
- returns one video per prompt: uint8 arrays (F, H, W, 3) when ``output_dir`` is empty, else the paths of the
  mp4 files written there (``<NN>_<prompt slug>.mp4``), as str.

A backbone the motion does not fit (other UNet architecture) raises ``BackboneError`` naming both sides.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel

logger = logging.getLogger("motiontune.tracking.pyfunc_model")

MOTION_ARTIFACT = "motion"
INVERSION_ARTIFACT = "reference_inversion"


def prompts_from_input(model_input: Any) -> list[str]:
    """A list of prompts out of a str, a list/tuple of str, a Series, or a DataFrame with a ``prompt`` column."""
    import pandas as pd

    if isinstance(model_input, str):
        prompts: list[Any] = [model_input]
    elif isinstance(model_input, pd.DataFrame):
        if "prompt" in model_input.columns:
            prompts = model_input["prompt"].tolist()
        elif len(model_input.columns) == 1:
            prompts = model_input.iloc[:, 0].tolist()
        else:
            raise ValueError(f"motion model input: a DataFrame needs a 'prompt' column, got columns {list(model_input.columns)}")
    elif isinstance(model_input, pd.Series):
        prompts = model_input.tolist()
    elif isinstance(model_input, (list, tuple)):
        prompts = [item["prompt"] if isinstance(item, dict) else item for item in model_input]
    else:
        raise ValueError(f"motion model input: prompts as a list of str or a DataFrame with a 'prompt' column, got {type(model_input).__name__}")
    if not prompts or not all(isinstance(prompt, str) and prompt.strip() for prompt in prompts):
        raise ValueError(f"motion model input: every prompt must be a non-empty str, got {prompts!r}")
    return prompts


class MotionModel(PythonModel):
    """Generate videos with one learned motion on a (referenced) text-to-video backbone."""

    # Inputs are checked by the model signature (prompts + params) and prompts_from_input, not by type hints
    # (MLflow's check of the attribute skips its type-hint wrapping and its warning that there are none).
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        from safetensors.torch import load_file

        from motiontune.methods.artifact import load_motion_artifact

        self.artifact = load_motion_artifact(Path(context.artifacts[MOTION_ARTIFACT]))
        inversion = context.artifacts.get(INVERSION_ARTIFACT)
        self.reference = load_file(inversion) if inversion else None
        config = dict(getattr(context, "model_config", None) or {})
        self.backbone_local_path = config.get("backbone_local_path")

    def _backbone(self, options: dict[str, Any]) -> Any:
        from motiontune.tracking.registry import cached_backbone

        recorded = self.artifact.manifest["backbone"]
        source, revision = options.get("backbone"), options.get("revision")
        adapter, adapter_revision = options.get("motion_adapter"), options.get("motion_adapter_revision")
        if not source:
            source = str(recorded["id_or_path"])
            revision = revision or recorded.get("revision")
            adapter = adapter or recorded.get("motion_adapter")
            adapter_revision = adapter_revision or recorded.get("motion_adapter_revision")
            # A relative folder recorded at training time: fall back to where it was then, if not found here.
            if not Path(source).exists() and self.backbone_local_path and Path(self.backbone_local_path).is_dir():
                source = str(self.backbone_local_path)
        device, dtype = str(options.get("device", "auto")), str(options.get("dtype", "float32"))
        return cached_backbone(source, revision, device, dtype, adapter, adapter_revision)

    def predict(self, context, model_input, params=None):
        from motiontune.io.video import write_video
        from motiontune.training.customize import check_artifact_fits
        from motiontune.generation.generate import GENERATION_OPTIONS, GenerationConfig, generate_with_motion, video_id
        from motiontune.generation.reference_inversion import NEEDS_INVERSION
        from motiontune.tracking.registry import PREDICT_DEFAULTS

        prompts = prompts_from_input(model_input)
        options = {key: value for key, value in (params or {}).items() if value is not None and value != ""}
        backbone = self._backbone(options)
        check_artifact_fits(self.artifact, backbone, int(self.artifact.manifest["num_frames"]))

        noise_init = options.get("noise_init") or self.artifact.manifest.get("inference_defaults", {}).get("noise_init", "random")
        if noise_init in NEEDS_INVERSION and self.reference is None:
            logger.warning("noise_init '%s' needs the reference's DDIM inversion, which this model does not hold: using 'random'", noise_init)
            noise_init = "random"
        given = {key: options[key] for key in GENERATION_OPTIONS if key in options}
        config = GenerationConfig(**{**PREDICT_DEFAULTS, **given, "noise_init": noise_init})
        videos = generate_with_motion(backbone, self.artifact, prompts, config, self.reference)
        output_dir = options.get("output_dir")
        if not output_dir:
            return videos
        paths = []
        for index, (prompt, frames) in enumerate(zip(prompts, videos)):
            path = Path(output_dir) / (video_id("_", index, prompt).split("/", 1)[1] + ".mp4")
            write_video(path, frames, float(options.get("fps", 8.0)))
            paths.append(str(path))
        return paths


mlflow.models.set_model(MotionModel())
