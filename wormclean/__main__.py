"""``python -m wormclean``: the command line, as the ``wormclean`` console script runs it (also what ``torchrun
-m wormclean fit ...`` starts in every process)."""

from wormclean.cli import main

if __name__ == "__main__":
    main()
