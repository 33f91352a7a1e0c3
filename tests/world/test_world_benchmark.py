"""World benchmark: cases, the per-video scoring against ground truth, and the summary table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from motiontune.errors import UserError
from motiontune.metrics.clip_scores import ClipScorer
from motiontune.metrics.trackers import build_tracker
from motiontune.world import AnalyserConfig, Intent, ScoringConfig, WorldSpec, render_sample
from motiontune.world_models.benchmark import (
    CaseSpec,
    WorldBenchmarkConfig,
    WorldBenchmarkError,
    benchmark_cases,
    score_generated,
    world_summary,
    world_summary_markdown,
)
from motiontune.world_models.competence import competence_prompts
from motiontune.world.vocabulary import noun_phrase

CONFIG = WorldBenchmarkConfig(
    reference_seed=7,
    cases=(CaseSpec("translate", {"direction": "right", "speed": "fast"}), CaseSpec("zigzag", {"direction": "down"})),
    targets_per_case=3, seeds=(0,), inversion_steps=2,
)


@pytest.fixture(scope="module")
def spec() -> WorldSpec:
    return WorldSpec(height=32, width=32)


def test_cases_are_fixed_by_the_seed_and_targets_differ_in_colour_and_shape(spec):
    cases = benchmark_cases(spec, CONFIG)
    again = benchmark_cases(spec, CONFIG)
    assert [c.target_prompts for c in cases] == [c.target_prompts for c in again]
    assert all(np.array_equal(a.reference.frames, b.reference.frames) for a, b in zip(cases, again))
    for case in cases:
        assert len(set(case.target_prompts)) == CONFIG.targets_per_case
        for colour, shape in case.targets:
            assert colour != case.reference.colour and shape != case.reference.shape
        assert case.reference.colour not in case.simplified_train_prompt  # VMC's simplified prompt: no appearance
        assert case.train_prompt == case.reference.caption  # the other methods train on the caption
    assert cases[1].reference.family == "zigzag"
    other = benchmark_cases(spec, WorldBenchmarkConfig(**{**CONFIG.__dict__, "reference_seed": 8}))
    assert [c.target_prompts for c in other] != [c.target_prompts for c in cases]


def test_a_subset_of_families_draws_its_cases_as_the_whole_benchmark_does(spec):
    """world_benchmark.families keeps each case's index: the same reference clip, targets and caption variants as
    in a whole run (renumbering the kept cases would draw other references under the same family names)."""
    config = WorldBenchmarkConfig(**{**CONFIG.__dict__, "train_caption_variants": 2})
    whole = benchmark_cases(spec, config)
    subset = benchmark_cases(spec, WorldBenchmarkConfig(**{**config.__dict__, "families": ("zigzag",)}))
    assert [case.name for case in subset] == [whole[1].name] and whole[1].name.startswith("01_zigzag")
    assert np.array_equal(subset[0].reference.frames, whole[1].reference.frames)
    assert subset[0].target_prompts == whole[1].target_prompts
    assert subset[0].train_prompt_variants == whole[1].train_prompt_variants
    # Drawn as the first case instead, the zigzag would be another clip: the index is what the subset keeps.
    alone = benchmark_cases(spec, WorldBenchmarkConfig(**{**config.__dict__, "cases": (CONFIG.cases[1],)}))
    assert not np.array_equal(alone[0].reference.frames, whole[1].reference.frames)
    params = {"reference_seed": 1, "cases": [{"family": "translate"}, {"family": "grow"}], "targets_per_case": 1,
              "seeds": [0], "inversion_steps": 2}
    assert WorldBenchmarkConfig.from_params({**params, "families": ["grow"]}).families == ("grow",)
    assert WorldBenchmarkConfig.from_params({**params, "families": None}).families is None
    with pytest.raises(WorldBenchmarkError, match="world_benchmark.families: zigzag not among the cases' families "
                                                  r"\(translate, grow\)"):
        WorldBenchmarkConfig.from_params({**params, "families": ["grow", "zigzag"]})
    for bad in ("grow", [], 3):
        with pytest.raises(WorldBenchmarkError, match="world_benchmark.families: null or a list"):
            WorldBenchmarkConfig.from_params({**params, "families": bad})


def test_the_sanity_check_targets_are_the_references_own_caption_and_appearance(spec):
    config = WorldBenchmarkConfig(**{**CONFIG.__dict__, "targets": "reference"})
    transfer, sanity = benchmark_cases(spec, CONFIG), benchmark_cases(spec, config)
    for case, own in zip(transfer, sanity):
        assert np.array_equal(case.reference.frames, own.reference.frames) and case.name == own.name
        assert own.target_prompts == (case.reference.caption,)
        assert own.targets == ((case.reference.colour, case.reference.shape),)
    worded = benchmark_cases(spec, WorldBenchmarkConfig(**{**CONFIG.__dict__, "targets": "others_with_motion"}))
    for case, with_motion in zip(transfer, worded):
        assert with_motion.targets == case.targets and with_motion.train_prompt == case.train_prompt
        for plain, prompt, (colour, shape) in zip(case.target_prompts, with_motion.target_prompts, case.targets):
            # the reference's caption with its noun phrase swapped for the target's: motion words kept
            assert prompt == case.reference.caption.replace(f"{case.reference.colour} {case.reference.shape}",
                                                            f"{colour} {shape}")
            assert plain in prompt and prompt != plain
    with pytest.raises(ValueError, match="world_benchmark.targets: 'self' is not one of"):
        WorldBenchmarkConfig.from_params({"reference_seed": 1, "cases": [{"family": "translate"}], "targets_per_case": 1,
                                          "seeds": [0], "inversion_steps": 2, "targets": "self"})


def test_caption_variants_keep_the_motion_words_avoid_the_targets_and_change_nothing_else(spec, tiny_backbone):
    import torch

    from motiontune.sampling.features import PROMPT_EMBEDS, SIMPLIFIED_PROMPT_EMBEDS
    from motiontune.sampling.latents import encode_prompts
    from motiontune.world_models.benchmark import add_caption_variants

    plain = benchmark_cases(spec, CONFIG)
    for targets in ("others", "reference"):
        base = benchmark_cases(spec, WorldBenchmarkConfig(**{**CONFIG.__dict__, "targets": targets}))
        varied = benchmark_cases(spec, WorldBenchmarkConfig(**{**CONFIG.__dict__, "targets": targets,
                                                                "train_caption_variants": 4}))
        for case, with_variants in zip(base, varied):
            assert case.train_prompt_variants == ()
            assert (with_variants.target_prompts, with_variants.targets) == (case.target_prompts, case.targets)
            assert len(set(with_variants.train_prompt_variants)) == 4
            reference = case.reference
            for variant in with_variants.train_prompt_variants:
                # the caption with only its noun phrase swapped, for an appearance neither the reference's nor a target's
                colour, shape = variant.split()[1:3]
                assert (colour, shape) not in case.targets and colour != reference.colour and shape != reference.shape
                assert variant == reference.caption.replace(f"{reference.colour} {reference.shape}", f"{colour} {shape}")
    assert [c.target_prompts for c in plain] == [c.target_prompts for c in benchmark_cases(spec, CONFIG)]
    features = {PROMPT_EMBEDS: torch.zeros(1, 77, 32), SIMPLIFIED_PROMPT_EMBEDS: torch.ones(1, 77, 32)}
    variants = ["a blue star quickly moving right", "a green circle quickly moving right"]
    add_caption_variants(tiny_backbone, features, variants)
    assert torch.equal(features[PROMPT_EMBEDS][0], torch.zeros(77, 32))
    assert torch.equal(features[PROMPT_EMBEDS][1:], encode_prompts(tiny_backbone, variants).float())
    assert torch.equal(features[SIMPLIFIED_PROMPT_EMBEDS][0], torch.ones(77, 32))
    assert torch.equal(features[SIMPLIFIED_PROMPT_EMBEDS][1:],
                      encode_prompts(tiny_backbone, ["a star quickly moving right", "a circle quickly moving right"]).float())
    # Asking for more variants than appearances left is the user's mistake: one line naming how many are left.
    left = (len(spec.colours) - 1) * (len(spec.shapes) - 1) - CONFIG.targets_per_case
    with pytest.raises(UserError, match=rf"^world_benchmark.train_caption_variants: only {left} colour/shape[^\n]*$"):
        benchmark_cases(spec, WorldBenchmarkConfig(**{**CONFIG.__dict__, "train_caption_variants": left + 1}))
    assert len(benchmark_cases(spec, WorldBenchmarkConfig(**{**CONFIG.__dict__, "train_caption_variants": left}))[0]
               .train_prompt_variants) == left
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="train_caption_variants: a whole number >= 0"):
            WorldBenchmarkConfig.from_params({"reference_seed": 1, "cases": [{"family": "translate"}], "targets_per_case": 1,
                                              "seeds": [0], "inversion_steps": 2, "train_caption_variants": bad})


def _score(spec, case, target, frames, clip=None):
    tracker = build_tracker("opencv_lk", grid_size=8)
    return score_generated(frames, case, target, spec, AnalyserConfig(), ScoringConfig(), tracker,
                           tracker.track(case.reference.frames), 0.5, clip)


def test_the_motion_redrawn_in_the_target_appearance_scores_as_a_transfer(spec):
    case = benchmark_cases(spec, CONFIG)[0]
    target = case.targets[0]
    reference = case.reference
    redrawn = render_sample(spec, reference.family, params=dict(reference.truth.params), colour=target[0], shape=target[1],
                            background=reference.background, seed=CONFIG.reference_seed * 1000)
    score = _score(spec, case, target, redrawn.frames)
    assert score["trajectory_similarity"] > 0.9 and score["direction_correct"] == 1.0
    assert score["colour_correct"] == 1.0 and score["shape_correct"] == 1.0 and score["leakage"] == 0.0
    assert score["jump_share"] == 0.0 and score["jump_free_trajectory_similarity"] == pytest.approx(score["trajectory_similarity"])
    # The same transfer with its last frame broken (the object drawn back at its start, half the side away):
    # the trajectory similarity falls, the jump is counted, and without it the motion is the reference's.
    broken = redrawn.frames.copy()
    broken[-1] = broken[0]
    jumped = _score(spec, case, target, broken)
    assert jumped["trajectory_similarity"] < 0.5
    assert jumped["jump_share"] == pytest.approx(1 / (spec.num_frames - 1))
    assert jumped["jump_free_trajectory_similarity"] > 0.9


def test_the_reference_itself_is_leakage_and_a_still_object_has_no_motion(spec):
    case = benchmark_cases(spec, CONFIG)[0]
    target = case.targets[0]
    copied = _score(spec, case, target, case.reference.frames)
    assert copied["leakage"] == 1.0 and copied["colour_correct"] == 0.0
    still = np.repeat(render_sample(spec, "translate", params={"direction": "right", "speed": "fast"}, colour=target[0],
                                    shape=target[1], seed=3).frames[:1], spec.num_frames, axis=0)
    frozen = _score(spec, case, target, still)
    assert frozen["trajectory_similarity"] == 0.0 and frozen["direction_correct"] == 0.0
    assert frozen["colour_correct"] == 1.0


def test_summary_has_mean_interval_and_seed_spread_per_method():
    rows = [
        {"method": "A", "seed": 0, "trajectory_similarity": 1.0, "direction_correct": 1.0, "point_track_fidelity": 0.5,
         "colour_correct": 1.0, "shape_correct": 0.0, "leakage": 0.0, "found": 1.0},
        {"method": "A", "seed": 1, "trajectory_similarity": 0.0, "direction_correct": None, "point_track_fidelity": 0.1,
         "colour_correct": 0.0, "shape_correct": 0.0, "leakage": None, "found": 1.0},
        {"method": "B", "seed": 0, "trajectory_similarity": 0.2, "direction_correct": 0.0, "point_track_fidelity": 0.0,
         "colour_correct": 1.0, "shape_correct": 1.0, "leakage": 1.0, "found": 0.0},
    ]
    summary = world_summary(pd.DataFrame(rows))
    a = summary.set_index("Method").loc["A"]
    assert a["trajectory_similarity"] == pytest.approx(0.5) and a["trajectory_similarity_seed_spread"] == pytest.approx(0.5)
    assert a["direction_correct"] == pytest.approx(1.0)  # None (closed path) is left out, not counted as 0
    assert list(summary["Method"]) == ["A", "B"]
    assert (a["trajectory_similarity_ci_low"], a["trajectory_similarity_ci_high"]) == (0.0, 1.0)
    markdown = world_summary_markdown(summary)
    assert "| A | 0.50 [0.00, 1.00] |" in markdown and "| B | 0.20 [0.20, 0.20] |" in markdown


def test_competence_prompts_cover_every_colour_shape_and_direction(spec):
    prompts = competence_prompts(spec, "translate", {"speed": "fast"})
    assert len(prompts) == len(spec.colours) * len(spec.shapes)
    text = " ".join(prompts)
    assert all(colour in text for colour in spec.colours) and all(shape in text for shape in spec.shapes)
    assert {Intent.from_caption(p, spec).truth.screen_direction for p in prompts} == set(spec.motion.directions)
    with pytest.raises(ValueError, match="no translate parameters"):
        competence_prompts(spec, "translate", {"speed": "warp"})


def test_clip_columns_tell_the_target_from_the_reference_with_the_world_clip(spec, project_root):
    clip = ClipScorer(project_root / "data/06_models/clip/world-clip")
    case = benchmark_cases(spec, CONFIG)[0]
    target = case.targets[0]
    redrawn = render_sample(spec, case.reference.family, params=dict(case.reference.truth.params), colour=target[0],
                            shape=target[1], background=case.reference.background, seed=5).frames
    transfer = _score(spec, case, target, redrawn, clip)
    assert transfer["clip_text_similarity"] > transfer["clip_reference_similarity"]
    copied = _score(spec, case, target, case.reference.frames, clip)
    assert copied["clip_reference_similarity"] > copied["clip_text_similarity"]
    appearance = noun_phrase(case.reference.colour, case.reference.shape)
    assert copied["clip_reference_similarity"] == pytest.approx(clip.text_similarity(case.reference.frames, appearance))
    assert 0 < transfer["clip_temporal_consistency"] <= 1
    without = _score(spec, case, target, redrawn)
    assert without["clip_text_similarity"] is None and without["clip_temporal_consistency"] is None



def test_a_benchmark_that_died_resumes_with_the_runs_it_had_finished(spec, tiny_backbone, tmp_path, monkeypatch):
    from dataclasses import replace as replaced

    from motiontune import benchmark as method_jobs  # a method run's job: train_and_generate
    from motiontune.benchmark import BenchmarkMethod
    from motiontune.generation.generate import GenerationConfig
    from motiontune.world_models import benchmark

    config = replaced(CONFIG, cases=CONFIG.cases[:1], targets_per_case=1)
    cases = benchmark_cases(spec, config)
    method = BenchmarkMethod("Motion Embeddings", "motion_embeddings")
    train = {"method": "motion_embeddings", "steps": 1, "checkpoint_every": 0, "progress_bar": False}

    def run(controls, work_dir):
        return benchmark.run_world_benchmark(
            tiny_backbone, spec, cases, [method], controls, train, GenerationConfig(steps=2, progress_bar=False), config,
            AnalyserConfig(), ScoringConfig(), build_tracker("opencv_lk"), 0.5, progress=False, work_dir=work_dir)

    controls = [benchmark.Control("Backbone", {"noise_init": "random"})]
    uninterrupted, _ = run(controls, None)
    calls = {"control": 0}
    plain_generate = benchmark.generate_without_motion
    monkeypatch.setattr(benchmark, "generate_without_motion",
                        lambda *args, **kwargs: calls.__setitem__("control", calls["control"] + 1) or plain_generate(*args, **kwargs))
    plain_learn = method_jobs.learn_motion
    monkeypatch.setattr(method_jobs, "learn_motion", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        run(controls, tmp_path / "runs")  # dies in the method's run, after the control's
    assert calls["control"] == 1 and list((tmp_path / "runs").rglob("*.safetensors"))
    monkeypatch.setattr(method_jobs, "learn_motion", plain_learn)
    resumed, _ = run(controls, tmp_path / "runs")
    assert calls["control"] == 1  # the control's videos came from the work folder
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    assert not (tmp_path / "runs").exists()  # gone once complete
    run([benchmark.Control("Backbone", {"noise_init": "random", "guidance_scale": 3.0})], tmp_path / "runs")
    assert calls["control"] == 2  # other settings: redone


def test_a_method_variant_generates_from_the_same_learnt_motion(spec, tiny_backbone, monkeypatch):
    from dataclasses import replace as replaced

    from motiontune import benchmark as method_jobs
    from motiontune.benchmark import BenchmarkMethod
    from motiontune.generation.generate import GenerationConfig
    from motiontune.world_models import benchmark

    variants = (benchmark.MethodVariant(" (same)", {}), benchmark.MethodVariant(" (random noise)", {"noise_init": "random"}))
    config = replaced(CONFIG, cases=CONFIG.cases[:1], targets_per_case=1, method_variants=variants)
    trainings = []
    plain_learn = method_jobs.learn_motion
    monkeypatch.setattr(method_jobs, "learn_motion", lambda *args, **kwargs: trainings.append(1) or plain_learn(*args, **kwargs))
    train = {"method": "motion_embeddings", "steps": 2, "checkpoint_every": 0, "progress_bar": False}
    results, videos = benchmark.run_world_benchmark(
        tiny_backbone, spec, benchmark_cases(spec, config), [BenchmarkMethod("Motion Embeddings", "motion_embeddings")],
        [], train, GenerationConfig(steps=2, progress_bar=False), config, AnalyserConfig(), ScoringConfig(),
        build_tracker("opencv_lk"), 0.5, progress=False)
    assert len(trainings) == 1  # one training per (case, method, seed), whatever the variants
    assert list(results["method"]) == ["Motion Embeddings", "Motion Embeddings (same)", "Motion Embeddings (random noise)"]
    assert results["reference_seed"].tolist() == [CONFIG.reference_seed] * 3  # which draw of the case each video is of
    own, same, random = (frames for key, frames in videos.items() if not key.startswith("reference/"))
    assert np.array_equal(own, same)  # the same sampling of the same motion
    assert not np.array_equal(own, random)  # Motion Embeddings' blended inversion is not random noise


def test_world_benchmark_keys_and_variants_are_checked():
    base = {"reference_seed": 1, "cases": [{"family": "translate"}], "targets_per_case": 1, "seeds": [0], "inversion_steps": 2}
    with pytest.raises(ValueError, match="world_benchmark.method_variant: unknown key \\(did you mean 'method_variants'"):
        WorldBenchmarkConfig.from_params({**base, "method_variant": []})
    with pytest.raises(ValueError, match="own non-empty suffix"):
        WorldBenchmarkConfig.from_params({**base, "method_variants": [{"suffix": " (a)"}, {"suffix": " (a)"}]})
    parsed = WorldBenchmarkConfig.from_params({**base, "method_variants": [{"suffix": " (r)", "generate": {"noise_init": "random"}}]})
    assert parsed.method_variants[0].generate == {"noise_init": "random"}


def test_each_method_is_paired_with_the_control_of_its_noise_init():
    from motiontune.benchmark import BenchmarkMethod
    from motiontune.generation.generate import GenerationConfig
    from motiontune.world_models.benchmark import Control, MethodVariant, same_init_controls

    controls = [Control("random", {"noise_init": "random"}), Control("blend", {"noise_init": "blend", "blend_strength": 0.5}),
                Control("blend 0.3", {"noise_init": "blend", "blend_strength": 0.3}), Control("inversion", {"noise_init": "inversion"})]
    methods = [BenchmarkMethod("ME", "motion_embeddings"), BenchmarkMethod("VMC", "vmc"), BenchmarkMethod("MM", "motionmatcher"),
               BenchmarkMethod("ME inverted", "motion_embeddings", generate={"noise_init": "inversion"}),
               BenchmarkMethod("ME lowfreq", "motion_embeddings", generate={"noise_init": "lowfreq"})]
    matched = same_init_controls(methods, controls, GenerationConfig(), [MethodVariant(" (r)", {"noise_init": "random"})])
    # The papers' inits (seed 004 A.4 blend 0.5; VMC's inversion; MotionMatcher's public noise prior 0.3).
    assert matched["ME"] == "blend" and matched["VMC"] == "inversion" and matched["MM"] == "blend 0.3"
    assert matched["ME inverted"] == "inversion" and matched["ME lowfreq"] is None
    assert matched["VMC (r)"] == "random" and matched["ME (r)"] == "random"
    everyone_blends = same_init_controls(methods[:2], controls, GenerationConfig(noise_init="blend", blend_strength=0.3))
    assert everyone_blends == {"ME": "blend 0.3", "VMC": "blend 0.3"}  # a generation setting wins over the defaults


def test_a_lead_is_the_paired_difference_with_its_control():
    from motiontune.world_models.benchmark import control_leads, control_leads_markdown

    rows = []
    for seed in (0, 1):
        for case in ("a", "b"):
            rows.append({"method": "C", "case": case, "seed": seed, "prompt": "p", "trajectory_similarity": 0.1 * seed})
            rows.append({"method": "M", "case": case, "seed": seed, "prompt": "p", "trajectory_similarity": 0.1 * seed + 0.5})
    rows.append({"method": "M", "case": "c", "seed": 0, "prompt": "p", "trajectory_similarity": -1.0})  # no control video
    leads = control_leads(pd.DataFrame(rows), {"M": "C", "C": None}).set_index("Method")
    assert list(leads.index) == ["M"] and leads.loc["M", "videos"] == 4
    assert leads.loc["M", "lead"] == pytest.approx(0.5) and leads.loc["M", "lead_ci_low"] == pytest.approx(0.5)
    assert "| M | C | 0.55 | 0.05 | +0.50 [+0.50, +0.50] | 4 |" in control_leads_markdown(leads.reset_index())


def test_leads_pair_videos_within_one_reference_draw():
    from motiontune.world_models.benchmark import control_leads

    # Two draws of the same case (reference seeds 7 and 8): same case, seed and prompt, other reference clips.
    rows = [{"method": method, "reference_seed": draw, "case": "a", "seed": 0, "prompt": "p", "trajectory_similarity": value}
            for method, draw, value in (("C", 7, 0.0), ("C", 8, 0.6), ("M", 7, 0.5), ("M", 8, 0.7))]
    leads = control_leads(pd.DataFrame(rows), {"M": "C"}).set_index("Method")
    assert leads.loc["M", "videos"] == 2 and leads.loc["M", "lead"] == pytest.approx(0.3)  # (0.5 + 0.1) / 2


def test_the_family_table_averages_each_method_over_each_family():
    from motiontune.world_models.benchmark import family_markdown

    rows = [{"method": "M", "family": "zigzag", "trajectory_similarity": 0.2}, {"method": "M", "family": "zigzag", "trajectory_similarity": 0.6},
            {"method": "M", "family": "grow", "trajectory_similarity": None}, {"method": "C", "family": "grow", "trajectory_similarity": -0.5}]
    markdown = family_markdown(pd.DataFrame(rows))
    assert markdown.splitlines()[0] == "| trajectory_similarity | zigzag | grow |"
    assert "| M | 0.40 | n/a |" in markdown and "| C | n/a | -0.50 |" in markdown
