"""Export to diffusers' LoRA format, checked against diffusers itself: the exported file loaded with
``AnimateDiffPipeline.load_lora_weights`` (or peft, for ZeroScope's UNet3D, which diffusers no longer loads LoRA
into) gives the video motiontune's own generation gives with the motion, from the same start latents."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from motiontune.command_line import main
from motiontune.methods.export import DEFAULT_SVD_RANK, EXPORT_RECORD, LORA_WEIGHT_NAME, export_motion

from export_helpers import motiontune_latents, pipeline_for, pipeline_latents, start_latents, trained_artifact

# Float tolerance relative to the latents' largest value (the tiny model's latents reach ~70 after 5 guided steps):
# ours fuses W + s B A into the weights, peft adds s B (A x); one UNet call differs by ~1e-6, as float32 does.
RELATIVE_TOLERANCE = 1e-5


def _close(theirs: torch.Tensor, ours: torch.Tensor) -> float:
    """max |theirs - ours| relative to max |ours|."""
    return (theirs - ours).abs().max().item() / ours.abs().max().item()


def _file_metadata(path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["lora_adapter_metadata"])


@pytest.mark.parametrize("method", ["motiondirector", "motionmatcher"])
def test_a_lora_motion_loaded_with_load_lora_weights_gives_motiontunes_video(tiny_animatediff, tmp_path, method):
    # lora_scale 0.7 as the motion's default: the file must carry it baked in, loaded at adapter weight 1.0.
    inference = {"lora_scale": 0.7, **({"lora_min_timestep": 0} if method == "motionmatcher" else {})}
    folder = trained_artifact(tiny_animatediff, method, tmp_path / "motion", inference=inference)
    result = export_motion(folder, tmp_path / "export")
    path = tmp_path / "export" / LORA_WEIGHT_NAME
    assert result.weights_path == path and result.warnings == []

    tensors = load_file(str(path))
    assert "unet.down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q.lora_A.weight" in tensors
    metadata = _file_metadata(path)
    assert metadata["unet.r"] == metadata["unet.lora_alpha"] == 32
    record = json.loads((tmp_path / "export" / EXPORT_RECORD).read_text())
    assert record["baked"]["factor"] == pytest.approx(0.7) and record["baked"]["into"] == "lora_B"

    start = start_latents(tiny_animatediff)
    pipeline = pipeline_for(tiny_animatediff)
    plain = pipeline_latents(pipeline, start)
    pipeline.load_lora_weights(str(tmp_path / "export"), adapter_name="motion")  # diffusers reads the file
    theirs = pipeline_latents(pipeline, start)
    ours = motiontune_latents(tiny_animatediff, folder, start)
    difference = _close(theirs, ours)
    print(f"{method}: max |diffusers load_lora_weights - motiontune| = {(theirs - ours).abs().max().item():.2e} ({difference:.1e} of max |latent|)")
    assert difference <= RELATIVE_TOLERANCE
    assert _close(plain, ours) > 100 * RELATIVE_TOLERANCE  # the motion acts: the comparison can fail
    # Not baked (scale 1): diffusers at adapter weight 1.0 would differ from motiontune's generation.
    assert _close(theirs, motiontune_latents(tiny_animatediff, folder, start, lora_scale=1.0)) > 100 * RELATIVE_TOLERANCE


def test_motionmatchers_timestep_gate_is_warned_about_and_recorded(tiny_animatediff, tmp_path, capsys):
    from motiontune.methods.base import method_class

    assert method_class("motionmatcher").inference_defaults["lora_min_timestep"] == 500  # the public code's default
    folder = trained_artifact(tiny_animatediff, "motionmatcher", tmp_path / "motion")
    assert main(["export", str(folder), "--format", "diffusers", "--output", str(tmp_path / "export")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "lora_min_timestep" in err and ">= 500" in err
    record = json.loads((tmp_path / "export" / EXPORT_RECORD).read_text())
    assert len(record["warnings"]) == 1 and "cannot express" in record["warnings"][0]
    assert record["baked"]["lora_min_timestep"] == 500
    assert (tmp_path / "export" / LORA_WEIGHT_NAME).is_file()


def _deltas(backbone, folder) -> dict[str, torch.Tensor]:
    tuned = load_file(str(folder / "motion.safetensors"))
    own = dict(backbone.unet.named_parameters())
    return {key.removesuffix(".weight"): (tensor.double() - own[key].detach().double()) for key, tensor in tuned.items()}


def test_vmc_exports_the_svd_of_its_weight_deltas_and_reports_the_error(tiny_animatediff, tmp_path):
    folder = trained_artifact(tiny_animatediff, "vmc", tmp_path / "motion")
    deltas = _deltas(tiny_animatediff, folder)

    # At the default rank the tiny layers (32 and 64 wide) are exact: diffusers gives VMC's generation.
    full = export_motion(folder, tmp_path / "full")
    assert full.record["svd"]["rank"] == 64 == DEFAULT_SVD_RANK and full.record["svd"]["relative_error"] < 1e-6
    start = start_latents(tiny_animatediff)
    pipeline = pipeline_for(tiny_animatediff)
    plain = pipeline_latents(pipeline, start)
    pipeline.load_lora_weights(str(tmp_path / "full"), adapter_name="vmc")
    theirs, ours = pipeline_latents(pipeline, start), motiontune_latents(tiny_animatediff, folder, start)
    difference = _close(theirs, ours)
    print(f"vmc rank 64: relative error {full.record['svd']['relative_error']:.2e}, "
          f"max |diffusers - motiontune| = {(theirs - ours).abs().max().item():.2e} ({difference:.1e} of max |latent|)")
    assert difference <= RELATIVE_TOLERANCE and _close(plain, ours) > 100 * RELATIVE_TOLERANCE

    # At rank 4 the error is the truncated SVD's, which is the best rank-4 one (Eckart-Young): checked from the
    # file's own tensors and the singular values of each delta.
    low = export_motion(folder, tmp_path / "rank4", rank=4)
    svd = low.record["svd"]
    tensors = {key.removeprefix("unet."): value.double() for key, value in load_file(str(tmp_path / "rank4" / LORA_WEIGHT_NAME)).items()}
    residual = total = 0.0
    worst = 0.0
    for layer, delta in deltas.items():
        product = tensors[f"{layer}.lora_B.weight"] @ tensors[f"{layer}.lora_A.weight"]
        layer_residual, layer_total = (delta - product).square().sum().item(), delta.square().sum().item()
        singular = torch.linalg.svdvals(delta)
        assert layer_residual == pytest.approx(singular[4:].square().sum().item(), rel=1e-6)
        residual, total, worst = residual + layer_residual, total + layer_total, max(worst, (layer_residual / layer_total) ** 0.5)
    print(f"vmc rank 4: relative error {svd['relative_error']:.4f}, worst layer {svd['max_layer_relative_error']:.4f}")
    assert svd["rank"] == 4 and svd["layers"] == len(deltas)
    assert svd["relative_error"] == pytest.approx((residual / total) ** 0.5, rel=1e-6)
    assert svd["max_layer_relative_error"] == pytest.approx(worst, rel=1e-6)
    assert 0.3 < svd["relative_error"] < 1.0  # random full-rank deltas: rank 4 of 32-64 keeps little
    assert any("relative error" in line for line in low.messages)
    assert json.loads((tmp_path / "rank4" / EXPORT_RECORD).read_text())["svd"]["relative_error"] == svd["relative_error"]


def test_vmc_export_refuses_a_backbone_of_another_architecture(tiny_animatediff, tiny_backbone, tmp_path):
    folder = trained_artifact(tiny_animatediff, "vmc", tmp_path / "motion")
    assert main(["export", str(folder), "--output", str(tmp_path / "out"), "--backbone", str(tiny_backbone.id_or_path)]) == 2


def test_a_zeroscope_motion_exports_the_same_file_and_says_to_use_load_motion(tiny_backbone, tmp_path):
    """diffusers cannot load LoRA into UNet3DConditionModel; peft's own injection reads the file's config and
    tensors, and gives motiontune's generation on the deprecated TextToVideoSDPipeline."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict

    folder = trained_artifact(tiny_backbone, "motiondirector", tmp_path / "motion", inference={"lora_scale": 0.7})
    result = export_motion(folder, tmp_path / "export")
    assert "load_motion" in result.messages[-1] and "UNet3DConditionModel" in result.messages[-1]
    path = tmp_path / "export" / LORA_WEIGHT_NAME
    assert any(key.startswith("unet.transformer_in.") for key in load_file(str(path)))

    pipeline = pipeline_for(tiny_backbone)
    assert not hasattr(pipeline.unet, "load_lora_adapter")
    config = LoraConfig(**{key.removeprefix("unet."): value for key, value in _file_metadata(path).items()})
    inject_adapter_in_model(config, pipeline.unet, adapter_name="motion")
    state = {key.removeprefix("unet."): value for key, value in load_file(str(path)).items()}
    outcome = set_peft_model_state_dict(pipeline.unet, state, adapter_name="motion")
    assert not [key for key in outcome.unexpected_keys if "lora" in key]
    start = start_latents(tiny_backbone)
    plain = motiontune_latents(tiny_backbone, None, start)
    theirs, ours = pipeline_latents(pipeline, start), motiontune_latents(tiny_backbone, folder, start)
    difference = _close(theirs, ours)
    print(f"zeroscope motiondirector via peft: max |TextToVideoSDPipeline - motiontune| = {(theirs - ours).abs().max().item():.2e} "
          f"({difference:.1e} of max |latent|)")
    assert difference <= RELATIVE_TOLERANCE and _close(plain, ours) > 100 * RELATIVE_TOLERANCE


def test_user_mistakes_are_one_line_and_status_2(tiny_backbone, tmp_path, capsys, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()  # MLflow's own table-creation log, now
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    capsys.readouterr()
    embeddings = trained_artifact(tiny_backbone, "motion_embeddings", tmp_path / "embeddings")
    cases = [
        (["export", str(embeddings), "--output", str(tmp_path / "a")], ["cannot be exported as LoRA weights", "motiontune.load_motion("]),
        (["export", str(embeddings), "--format", "onnx", "--output", str(tmp_path / "b")], ["'onnx' is not one of ['diffusers']"]),
        (["export", "no_such_motion", "--output", str(tmp_path / "c")], ["models:/motion-no_such_motion@latest", "not found"]),
        (["export", str(tmp_path / "missing"), "--output", str(tmp_path / "d")], ["no such motion artifact folder"]),
    ]
    for argv, phrases in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert all(phrase in err for phrase in phrases), err
    assert not (tmp_path / "a").exists()


def test_the_readme_snippet_runs_on_the_tiny_animatediff_backbone(tiny_animatediff, project_root, tmp_path, monkeypatch):
    """README "Use your motion elsewhere", as written (fewer steps), in a folder laid out as the project: the
    tiny AnimateDiff backbone, an exported LoRA motion and a Motion Embeddings motion folder."""
    readme = (project_root / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use your motion elsewhere", 1)[1].split("\n## ", 1)[0]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "load_lora_weights" in snippet and "motiontune.load_motion(pipe.unet" in snippet
    assert snippet.count("num_inference_steps=25") == 2
    (tmp_path / "data/06_models/backbones").mkdir(parents=True)
    (tmp_path / "data/06_models/backbones/tiny-animatediff").symlink_to(tiny_animatediff.id_or_path)
    lora = trained_artifact(tiny_animatediff, "motiondirector", tmp_path / "lora_motion")
    export_motion(lora, tmp_path / "exported/my_motion")
    trained_artifact(tiny_animatediff, "motion_embeddings", tmp_path / "data/06_models/motions/my_motion")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(snippet.replace("num_inference_steps=25", "num_inference_steps=2"), namespace)
    assert namespace["video"] is not None and len(namespace["video"]) == 8
    assert not any(type(p).__name__ == "MotionEmbeddingAttnProcessor" for p in namespace["pipe"].unet.attn_processors.values())


def test_a_registered_motion_exports_by_uri_and_by_name(tiny_backbone, tmp_path, capsys):
    """``models:/motion-<name>@latest`` and the bare name resolve through the MLflow registry to the same files
    as the artifact folder."""

    import mlflow

    from motiontune.methods.artifact import load_motion_artifact
    from motiontune.tracking.registry import mlflow_uris, register_motion

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder = trained_artifact(tiny_backbone, "motiondirector", tmp_path / "motion", inference={"lora_scale": 0.5})
    with mlflow_uris(uri):
        experiment = mlflow.create_experiment("export-test", artifact_location=(tmp_path / "mlruns").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            register_motion("exported", load_motion_artifact(folder))
    capsys.readouterr()

    expected = load_file(str(export_motion(folder, tmp_path / "from_folder").weights_path))
    for source, out in (("models:/motion-exported@latest", "by_uri"), ("exported", "by_name")):
        assert main(["export", source, "--output", str(tmp_path / out), "--tracking-uri", uri]) == 0
        exported = load_file(str(tmp_path / out / LORA_WEIGHT_NAME))
        assert exported.keys() == expected.keys() and all(torch.equal(exported[key], expected[key]) for key in expected)
        assert json.loads((tmp_path / out / EXPORT_RECORD).read_text())["motion"] == source
    assert "wrote" in capsys.readouterr().out
