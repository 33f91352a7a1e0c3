from kedro.pipeline import Pipeline, node, pipeline

from motiontune.pipelines.world_clip.nodes import train_clip


def create_pipeline(**kwargs) -> Pipeline:
    """Train the world CLIP and report its zero-shot colour and shape accuracy."""
    return pipeline([node(train_clip, inputs=["params:world", "params:world_clip"],
                          outputs="world_clip_training_summary", name="train_world_clip")])
