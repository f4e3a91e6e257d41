"""``python -m sqlml``: the sqlml command line."""

from .cli import main

main()
