"""`python -m assembly` is the embedded platform (see assembly.embedded)."""

from assembly.embedded import main

main()
