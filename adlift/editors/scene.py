"""3D scene editing under the name the editors issue uses: see :mod:`adlift.editors.scene_edit`."""

from adlift.editors.scene_edit import SceneEditConfig, SceneEditResult, edit_scene, make_optimizer, scene_extent

__all__ = ["SceneEditConfig", "SceneEditResult", "edit_scene", "make_optimizer", "scene_extent"]
