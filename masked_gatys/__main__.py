"""``python -m masked_gatys`` runs the command-line interface."""

from masked_gatys.cli import main

if __name__ == "__main__":
    main()
