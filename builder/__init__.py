"""mpforge: build Alipay mini-programs from a declarative merchant spec.

Kept import-free so `mpforge --help` and `--version` start fast.
"""

__version__ = "0.1.0"
