"""``xmrank tune``: settings selected on labelled validation data; the group of ``tune rerank`` and ``tune cluster``.

Each subcommand lives in its own module (:mod:`.tune_rerank`, :mod:`.tune_cluster`); this group owns them.
"""

from __future__ import annotations

import click

from .tune_cluster import tune_cluster
from .tune_rerank import tune_rerank


@click.group("tune", help="""Select settings on labelled validation data (cross-validation over identities).

Give the labelled split (training or validation identities), never the test
split; apply the printed setting to the test split.
""")
def tune():
    pass


tune.add_command(tune_rerank, "rerank")
tune.add_command(tune_cluster, "cluster")
