"""The bundled program's entry point (PyInstaller): the same `localopen` as the console script."""

import sys

from localopen.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
