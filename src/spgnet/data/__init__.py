"""Data: the on-disk layout (docs/design.md §4), the pair dataset, the validator, synthetic people."""
