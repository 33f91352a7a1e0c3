from kedro.pipeline import Pipeline, node, pipeline

from motiontune.pipelines.generate.nodes import generate_from_registry, generate_videos


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                generate_videos,
                inputs=["motion_artifacts", "encoded_references", "clip_metadata", "params:backbone", "params:video", "params:generate", "params:ray"],
                outputs="generated_videos",
                name="generate_videos",
            )
        ]
    )


def create_registry_pipeline(**kwargs) -> Pipeline:
    """Videos from a registered motion (``generate.motion``, ``generate.prompts``): part of ``--pipelines=generate``,
    and alone as ``--pipelines=generate_registry``, which needs no local data (only the registry and a backbone)."""
    return pipeline(
        [
            node(
                generate_from_registry,
                inputs=["params:backbone", "params:video", "params:generate"],
                outputs="registry_videos",
                name="generate_from_registry",
            )
        ]
    )
