from kedro.pipeline import Pipeline, node, pipeline

from motiontune.pipelines.encode.nodes import encode_references


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                encode_references,
                inputs=["reference_clips", "clip_metadata", "params:backbone", "params:encode"],
                outputs="encoded_references",
                name="encode_references",
            )
        ]
    )
