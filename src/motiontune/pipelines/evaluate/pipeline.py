from kedro.pipeline import Pipeline, node, pipeline

from motiontune.pipelines.evaluate.nodes import evaluate_motions


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                evaluate_motions,
                inputs=["reference_clips", "generated_videos", "clip_metadata", "params:evaluate", "params:world"],
                outputs=["motion_metrics", "motion_previews", "contact_sheets", "metrics_table", "metrics_table_markdown"],
                name="evaluate_motions",
            )
        ]
    )
