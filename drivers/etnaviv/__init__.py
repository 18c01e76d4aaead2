"""Etnaviv: the VeriSilicon Vivante NPU driver (Mesa: src/gallium/drivers/etnaviv/etnaviv_ml*)."""
