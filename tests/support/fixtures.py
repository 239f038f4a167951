"""pytest fixtures shared by all test suites (registries, token server, WIT packages).

Imported with ``from support.fixtures import *`` by tests/conftest.py.
"""
