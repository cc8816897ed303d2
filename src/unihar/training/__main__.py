"""``python -m unihar.training`` / ``torchrun --nproc_per_node N -m unihar.training``: the training entry point.

Same options as ``unihar train`` (see :mod:`unihar.cli.train`); the loop is :mod:`unihar.training.trainer`.
"""

from unihar.cli.train import main

if __name__ == "__main__":
    main()
