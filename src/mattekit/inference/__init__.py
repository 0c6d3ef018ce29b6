"""Using a trained model: a checkpoint at its own input convention, user prompts, cut-outs."""
