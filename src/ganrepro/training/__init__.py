"""One training loop (`loop.train`) for every family; each paper's objective is an `Objective`."""
