"""`python -m acct` runs the CLI (also under torchrun)."""

from acct.cli import main

if __name__ == "__main__":
    main()
