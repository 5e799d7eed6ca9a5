"""Network architectures."""

from cutlib.models.scenenet import SceneNet

__all__ = ["SceneNet"]
