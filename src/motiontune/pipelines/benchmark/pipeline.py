from kedro.pipeline import Pipeline, node, pipeline

from motiontune.pipelines.benchmark.nodes import benchmark_methods


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                benchmark_methods,
                inputs=[
                    "benchmark_manifest", "params:backbone", "params:video", "params:ingest", "params:encode",
                    "params:train", "params:generate", "params:evaluate", "params:benchmark", "params:ray",
                ],
                outputs=["benchmark_results", "benchmark_summary", "benchmark_summary_markdown", "benchmark_plots", "benchmark_videos"],
                name="benchmark_methods",
            )
        ]
    )
