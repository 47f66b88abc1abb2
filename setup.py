"""Build step on top of pyproject.toml: a wheel carries the harness's configs and the paper's
figures inside the package (harness/_shipped/), so that `pip install .` gives a working tool.
An editable install reads them from the checkout instead (harness/paths.py)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"configs": ROOT / "configs", "paper": ROOT / "results" / "paper"}


class BuildPyWithShippedData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name, source in SHIPPED.items():
            target = Path(self.build_lib) / "harness" / "_shipped" / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithShippedData})
