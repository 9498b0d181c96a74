"""The trained model: Delta-DINO residual + frozen DINO features on a feature grid, cosine cost volume,
refiner and soft-argmax (docs/method.md section 1)."""
