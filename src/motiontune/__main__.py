"""``python -m motiontune`` runs the Kedro project (same as ``kedro run``)."""

from pathlib import Path

from kedro.framework.cli.utils import find_run_command
from kedro.framework.project import configure_project


def main() -> None:
    configure_project(Path(__file__).parent.name)
    run = find_run_command(Path(__file__).parent.name)
    run()


if __name__ == "__main__":
    main()
