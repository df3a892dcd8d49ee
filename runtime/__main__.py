"""`python -m edge_retalk` is the `edge-retalk` command."""

from .cli import main

main()
