"""Reading and writing scenes and cameras.

Scene files: :func:`read_scene` / :func:`write_scene` (every registered format, see
:mod:`adlift.io.formats`); cameras: :func:`load_cameras`.
"""

from adlift.io.atomic import atomic_path, write_text_atomic
from adlift.io.cameras import load_cameras
from adlift.io.colmap import write_colmap_binary, write_colmap_text
from adlift.io.formats import SCENE_FORMATS, SceneFormat, detect_scene_format, read_scene, write_scene
from adlift.io.gs_cameras import write_gs_cameras_json
from adlift.io.nerfstudio import write_transforms
from adlift.io.ply import read_ply, write_ply

__all__ = ["atomic_path", "write_text_atomic", "read_ply", "write_ply"]
__all__ += ["SCENE_FORMATS", "SceneFormat", "detect_scene_format", "read_scene", "write_scene"]
__all__ += ["load_cameras", "write_colmap_binary", "write_colmap_text", "write_gs_cameras_json", "write_transforms"]
