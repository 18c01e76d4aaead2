"""Rocket: the Rockchip RK3588 NPU driver (Mesa: src/gallium/drivers/rocket)."""
