"""Thin absl binaries over the linear_jax library."""
