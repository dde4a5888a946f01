"""The ``xmrank`` command-line interface (installed as :mod:`xmrank.cli`)."""
