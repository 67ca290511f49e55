"""Distillation: pseudo labels, refinement, losses, trainers, and the perspective teacher trainer."""
