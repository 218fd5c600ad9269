"""Data: the on-disk layout (DESIGN §4), the pair dataset, the validator, synthetic people."""
