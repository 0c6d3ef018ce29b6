"""SAMA (Segment And Matte Anything): SAM with multi-view local features, Local-Adapters and two
task heads (segmentation, matting)."""
