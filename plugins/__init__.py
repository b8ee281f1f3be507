"""First-party mpforge plugins. Each registers through the `mpforge` entry-point group in
pyproject.toml, exactly as a third-party plugin would."""
