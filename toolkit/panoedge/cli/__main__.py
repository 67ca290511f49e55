"""``python -m panoedge.cli ...`` (and ``torchrun -m panoedge.cli distill ...``)."""

from panoedge.cli import main

main()
