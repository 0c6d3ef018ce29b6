"""ZIM's label converter: segmentation mask + image -> matte (how SA1B-Matte was made)."""
