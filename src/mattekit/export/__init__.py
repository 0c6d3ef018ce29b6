"""A checkpoint's networks to ONNX (TorchScript where ONNX cannot express them), each checked
against PyTorch on a sample input. Its command line, ``mattekit export``, is
:mod:`mattekit.pipelines.export` (which imports this package, never the other way)."""
