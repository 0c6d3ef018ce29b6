"""Test-session settings shared by every test."""

import torch

# `pytest -n 2` runs two worker processes on a 2-core machine: with torch's default of one
# thread per core each, the workers oversubscribe the CPU and tiny matmuls take milliseconds.
torch.set_num_threads(1)
