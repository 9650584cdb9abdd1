"""Reports: exact losslessness, chi-squared tables, efficiency against bounds, GPU parity."""
__all__: list[str] = []
