"""``python -m robopref``: the same command line as the ``robopref`` console script."""

from robopref.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
