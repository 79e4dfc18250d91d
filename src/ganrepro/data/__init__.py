"""Datasets: a registry of specs, a checksummed downloader and preprocessing to tensors."""
