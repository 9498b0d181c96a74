"""Inference: tracks, occlusion and the flow-guided (weight-free) positions and visibility."""
