"""Reading and writing scenes and cameras."""

from adlift.io.atomic import atomic_path, write_text_atomic
from adlift.io.ply import read_ply, write_ply

__all__ = ["atomic_path", "write_text_atomic", "read_ply", "write_ply"]
