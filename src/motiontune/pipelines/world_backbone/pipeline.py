from kedro.pipeline import Pipeline, node, pipeline

from motiontune.pipelines.world_backbone.nodes import measure_competence, measure_competence_after_training, train_backbone

COMPETENCE_OUTPUTS = ["world_backbone_competence_results", "world_backbone_competence", "world_backbone_competence_videos"]


def create_pipeline(**kwargs) -> Pipeline:
    """Train the world backbone, then measure its competence."""
    return pipeline(
        [
            node(
                train_backbone,
                inputs=["params:world", "params:tiny_backbone", "params:tiny_animatediff", "params:world_backbone"],
                outputs="world_backbone_training_summary",
                name="train_world_backbone",
            ),
            node(
                measure_competence_after_training,
                inputs=["world_backbone_training_summary", "params:world", "params:world_backbone", "params:video.fps"],
                outputs=COMPETENCE_OUTPUTS,
                name="measure_world_backbone_competence",
            ),
        ]
    )


def create_competence_pipeline(**kwargs) -> Pipeline:
    """Only the competence report, of the backbone in ``world_backbone.output_dir`` (the committed one by default)."""
    return pipeline([node(
        measure_competence,
        inputs=["params:world", "params:world_backbone", "params:video.fps"],
        outputs=COMPETENCE_OUTPUTS,
        name="measure_world_backbone_competence",
    )])
