from kedro.pipeline import Pipeline, node, pipeline

from motiontune.pipelines.ingest.nodes import ingest_references


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                ingest_references,
                inputs=["manifest", "params:video", "params:ingest"],
                outputs=["reference_clips", "clip_metadata"],
                name="ingest_references",
            )
        ]
    )
