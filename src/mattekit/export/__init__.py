"""``mattekit export``: a checkpoint's networks to ONNX (TorchScript where ONNX cannot express
them), each checked against PyTorch on a sample input."""
