"""Simulated etnaviv GEM device with a functional model of the NN and TP units."""
