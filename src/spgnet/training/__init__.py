"""The training engine: schemes S1‖S2 / S1▷S2 / S1⋈S2, AMP, DDP, exact resume."""
