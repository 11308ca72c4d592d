"""ape scripts (`ape run <name>`) over importable modules.

`ape run` executes every script here that defines `cli` with runpy, one
after another; a script that another one imported first (scripts.deploy,
imported by bench.py and demo.py) makes runpy print a RuntimeWarning in
front of the command's own output, such as its one-line errors. Importing
each other is intended here, so that warning is silenced.
"""

import warnings

warnings.filterwarnings("ignore", message=r"'scripts\.\w+' found in sys\.modules", category=RuntimeWarning)
