"""gunicorn settings for the hub's HTTP side, when gunicorn is run directly:

    gunicorn hub.entrypoints.wsgi:app -c ops/gunicorn.conf.py

The settings are those of ``hub web`` (``hub/gunicorn_config.py``, where each
choice is explained); add a gunicorn setting below when you need one that
``hub web`` does not expose. Run ``hub migrate`` first: web workers never
create the schema.
"""

from hub.entrypoints.gunicorn_config import *  # noqa: F403
from hub.entrypoints.gunicorn_config import child_exit, on_exit, on_starting, post_worker_init, worker_exit  # noqa: F401
