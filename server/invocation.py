"""The command a person types to run this program again, the way it was started.

Hints the program prints (`login-link`, `user add ...`) must work when copied:
`python -m server` only works inside the virtual environment, which a person who
ran `./run.sh` has not activated.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def command(words: str, env: dict[str, str] | None = None) -> str:
    """`words` (say `login-link --user ann`) as a whole command line that works as printed,
    after `env` assignments (`PORT=9000`) the command needs to agree with this process."""
    assignments = "".join(f"{name}={shlex.quote(value)} " for name, value in (env or {}).items())
    return f"{assignments}{_program()} {words}"


def _program() -> str:
    if Path(sys.argv[0]).name == "csv-import":
        return "csv-import"  # the console command of an install: on PATH, or named as typed
    run_sh = CHECKOUT / "run.sh"
    if run_sh.is_file() and Path(sys.prefix).resolve() == (CHECKOUT / ".venv").resolve():
        # ./run.sh's own environment: the README's way, from the checkout.
        return "./run.sh" if Path.cwd().resolve() == CHECKOUT else shlex.quote(str(run_sh))
    if sys.prefix != sys.base_prefix:
        # Another virtual environment: its python by path, as no `python` on PATH is it.
        return f"{shlex.quote(sys.executable)} -m server"
    return "python3 -m server"
