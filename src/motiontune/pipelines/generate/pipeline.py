from kedro.pipeline import Pipeline, node, pipeline

from motiontune.pipelines.generate.nodes import generate_videos


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                generate_videos,
                inputs=["motion_artifacts", "encoded_references", "clip_metadata", "params:backbone", "params:video", "params:generate"],
                outputs="generated_videos",
                name="generate_videos",
            )
        ]
    )
