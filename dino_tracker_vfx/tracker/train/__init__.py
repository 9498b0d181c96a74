"""Test-time training of Delta-DINO and the refiner on one shot (METHOD.md sections 3-4)."""
