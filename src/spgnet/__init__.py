"""SPGNet: Semantic Person Generation Network for human pose transfer.

Stage 1 (SPATN) predicts the target semantic parsing map from the source parsing and
the two poses; stage 2 generates the person in the new pose with per-region styles
injected by SEAN region-adaptive normalization. See docs/architecture.md and docs/design.md.
"""

__version__ = "0.1.0"


class SPGNetError(Exception):
    """An error caused by the user's input (a file, an argument, a config value).

    The message must name the input and say what is wrong; the CLI prints it as one
    line and exits non-zero.
    """
