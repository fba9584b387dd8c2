"""Where the files the program reads at run time live: migrations, queries, page assets.

The repository keeps them in its top-level `sql/` and `web_static/` folders.
An installed wheel cannot reach those, so setup.py copies them into the
package as `server/_data/sql` and `server/_data/web_static`. Looking in the
package first and in the checkout second makes one lookup serve both: a
wheel (from any directory) and a checkout (`pip install -e .`, or
`PYTHONPATH=.`), where the package is the checkout's own `server/` folder.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


class ResourceMissing(RuntimeError):
    """The package was installed without its data (a broken build)."""


def resource_dir(name: str) -> Path:
    """The directory `name` (`sql` or `web_static`), from the package or the checkout."""
    package = files(__package__)
    # pip unpacks wheels, so the package is a directory on disk; aiohttp's static
    # route and the migration glob need one (a zip import would not do).
    if not isinstance(package, Path):
        raise ResourceMissing(f"the {__package__} package is not a directory on disk: {package}")
    for candidate in (package / "_data" / name, package.parent / name):
        if candidate.is_dir():
            return candidate
    raise ResourceMissing(f"{name}/ is neither in the installed package ({package / '_data'}) "
                          f"nor beside it ({package.parent}); rebuild the wheel with setup.py")
