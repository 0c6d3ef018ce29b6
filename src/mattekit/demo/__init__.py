"""``mattekit demo``: a local web page to matte photos with a checkpoint, click by click."""
