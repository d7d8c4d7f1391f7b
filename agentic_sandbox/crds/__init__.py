"""Resource types: Instance and its parts, validation, canonical spec hash. No I/O."""
