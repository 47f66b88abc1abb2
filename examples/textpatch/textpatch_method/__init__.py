"""textpatch: a small text–patch model registered into sag-harness from outside it (examples/).

Importing the package registers the method, so every route names it the same way:
`--include textpatch_method`, `--include path/to/textpatch_method`, or the entry point."""

from textpatch_method import model  # noqa: F401  (registers "textpatch")
