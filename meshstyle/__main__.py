"""Allow ``python -m meshstyle``."""

from meshstyle.cli import main

if __name__ == "__main__":
    main()
