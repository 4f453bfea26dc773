"""Real measurements to check the static estimates against: live tensor bytes on CPU, CUDA peaks."""
