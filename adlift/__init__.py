"""AdLift: protect 3D Gaussian Splatting assets against instruction-driven editing."""

from adlift.cameras import Cameras
from adlift.errors import AdLiftError, CameraError, FileFormatError, SceneError
from adlift.scene import GaussianScene

__version__ = "0.1.0"

__all__ = ["AdLiftError", "CameraError", "Cameras", "FileFormatError", "GaussianScene", "SceneError", "__version__"]
