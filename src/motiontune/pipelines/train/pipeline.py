from kedro.pipeline import Pipeline, node, pipeline

from motiontune.pipelines.train.nodes import train_motions


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                train_motions,
                inputs=["encoded_references", "clip_metadata", "params:backbone", "params:train", "params:ray"],
                outputs=["motion_artifacts", "training_summary"],
                name="train_motions",
            )
        ]
    )
