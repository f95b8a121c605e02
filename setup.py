"""Packaging beyond what pyproject.toml can say: templates/ (with the service catalog in it) ships
inside the package as openi_tasks/templates, so an installed openi-tasks runs without a checkout."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["openi_tasks", "openi_tasks.*"]) + ["openi_tasks.templates"],
    package_dir={"openi_tasks.templates": "templates"},
)
