"""Simulated accel/rocket device with a functional model of the RK3588 NPU."""
