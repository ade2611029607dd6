"""The metric itself: loading the compiled ops (library), their typed wrappers and fake kernels
(ops), the `dse` function (estimator), its float64 reference, option checks and synthetic
features. Imports nothing from the rest of the package."""
