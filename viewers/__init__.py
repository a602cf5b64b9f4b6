"""Scripts around the browser viewer (the viewer itself is the importable :mod:`adlift.viewer`)."""
