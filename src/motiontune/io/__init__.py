"""Input/output: reference videos, the video manifest and their validation.

Submodules are imported directly (``from motiontune.io.video import read_video``)
so that importing one does not pull in the others' dependencies.
"""
