"""The product's answer per model: usable here (fit and verdict from one snapshot of this machine),
the recommendations and the one-page summary."""
