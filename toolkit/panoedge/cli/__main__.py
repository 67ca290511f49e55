"""``python -m panoedge.cli ...`` (and ``torchrun -m panoedge.cli distill ...``)."""

from panoedge.cli import main

if __name__ == "__main__":  # worker processes started with spawn import this module again: they must not run the CLI
    main()
