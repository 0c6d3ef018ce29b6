"""Pipelines built on the CLI: ablation grids, label conversion."""
