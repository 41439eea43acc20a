"""The hub as deployed: gunicorn with ``ops/gunicorn.conf.py`` and ``hub worker``, as processes."""

from __future__ import annotations

import os
import subprocess
import sys

import requests

from tests.conftest import ROOT, HubUnderTest, wait_until

LOCAL_PARTNERS = "127.0.0.0/8,::1/128"  # the partner test servers live on 127.0.0.1


def start_deployed(settings, processes, **env_overrides: str) -> HubUnderTest:
    """gunicorn (``-c ops/gunicorn.conf.py``: its workers and threads, as deployed) on the
    settings' port, and one ``hub worker``; ``env_overrides`` are HUB_* settings of both."""
    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    for name in ("HUB_WEB_WORKERS", "HUB_WEB_THREADS", "WEB_CONCURRENCY", "HUB_REALTIME_CONCURRENCY"):
        env.pop(name, None)  # the deployed defaults
    env.update({"HUB_STILL_ALIVE_AFTER": "2", "HUB_PARTNER_NETWORKS_ALLOWED": LOCAL_PARTNERS,
                "HUB_BIND": f"127.0.0.1:{settings.extra['port']}", **env_overrides})
    with open(processes.logs / "gunicorn.log", "wb") as log:
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "hub.entrypoints.wsgi:app",
                                "-c", str(ROOT / "ops" / "gunicorn.conf.py")],
                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    processes.children.append(web)
    processes.start(["worker"], env)
    url = f"http://127.0.0.1:{settings.extra['port']}"

    def up() -> bool:
        try:
            return requests.get(url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    assert wait_until(up, timeout=30), "gunicorn did not come up\n" + processes.log_tail()
    return HubUnderTest(settings, url)
