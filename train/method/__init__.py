"""What the method optimises: the losses and the distillation targets (teacher cache)."""
