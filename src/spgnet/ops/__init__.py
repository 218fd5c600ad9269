"""Tensor operations below the models: backward warping (:mod:`.warp`) and the exact
class-window / border-shell kernels of the ACE layers (:mod:`.class_window`), each with
its plain reference path in the docstring and equality tests in tests/ops."""
