"""`python -m edge_retalk` is the `edge-retalk` command."""

from .launcher import main

main()
