"""The training loop's plumbing: engine, DDP, checkpoints, run log, CLI builder, embedding."""
