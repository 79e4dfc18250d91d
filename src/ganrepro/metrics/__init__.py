"""Metrics: feature backends (`features.FEATURES`), FID, LPIPS, and the offline digit classifier."""
