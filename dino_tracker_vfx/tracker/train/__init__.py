"""Test-time training of Delta-DINO and the refiner on one shot (docs/method.md sections 3-4)."""
