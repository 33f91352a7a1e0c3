from kedro.pipeline import Pipeline, node, pipeline

from motiontune.pipelines.world_benchmark.nodes import benchmark_on_world


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                benchmark_on_world,
                inputs=[
                    "params:backbone", "params:world", "params:train", "params:generate", "params:evaluate",
                    "params:world_benchmark", "params:video.fps", "params:ray",
                ],
                outputs=[
                    "world_benchmark_results", "world_benchmark_summary", "world_benchmark_summary_markdown",
                    "world_benchmark_plots", "world_benchmark_videos",
                ],
                name="benchmark_on_world",
            )
        ]
    )
