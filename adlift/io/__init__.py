"""Reading and writing scenes and cameras."""

from adlift.io.atomic import atomic_path, write_text_atomic
from adlift.io.cameras import load_cameras
from adlift.io.colmap import write_colmap_binary, write_colmap_text
from adlift.io.gs_cameras import write_gs_cameras_json
from adlift.io.nerfstudio import write_transforms
from adlift.io.ply import read_ply, write_ply

__all__ = ["atomic_path", "write_text_atomic", "read_ply", "write_ply"]
__all__ += ["load_cameras", "write_colmap_binary", "write_colmap_text", "write_gs_cameras_json", "write_transforms"]
