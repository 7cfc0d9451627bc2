"""Long-tailed phantom datasets in the official layouts (DESIGN §7)."""
