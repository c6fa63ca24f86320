"""The test suite, as a package: pytest imports tests/conftest.py as `tests.conftest`, the
name the tests import it by. As a plain folder it was imported twice (`conftest` for pytest,
`tests.conftest` for the tests), each copy with its own list of apps: the `database` fixture
never saw the apps a test made with `make_app`, so none was stopped (each kept its SQLite
files, sockets and threads open for the rest of the session), and they ran on SQLite even
under `--databases postgres`.
"""
