"""The terminal face: parses, calls app/, formats what it returns (no Qt). `main` holds the parser."""
