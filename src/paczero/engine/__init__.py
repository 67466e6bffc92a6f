"""The step engine: one private step's arithmetic, below the run that drives it.

``zo`` draws the seeded perturbations and estimates the directional derivatives from
forward passes, ``optim`` makes a zeroth-order step of them (``ZOOptimizer``: estimate,
release through the mechanism, update), ``firstorder`` the first-order baselines' step
(DP-SGD, backprop), and ``batch_budget`` sizes the micro-batches of those forward passes.
"""
