"""The package list, computed so that a new package under genolang/ is never left out
of the wheel (tests/test_wheel.py checks this). Everything else is in pyproject.toml,
which also maps cli/, grammar/ and specs/ into the package."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["genolang", "genolang.*"]),
        "genolang.cli",
        *(f"genolang.cli.{p}" for p in find_packages(where="cli")),
        "genolang.grammar",
        "genolang.specs",
    ],
)
