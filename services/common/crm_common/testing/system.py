"""Drive the CRM as its users do: start it exactly as ``make run`` does and talk HTTP to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from crm_common.config import DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, REPO_ROOT


class Api:
    """A logged-in (or anonymous) HTTP client of the gateway's /api/v1."""

    def __init__(self, base_url: str, token: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.me: dict = {}
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, json=None, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.http.request(method, self.base_url + path, json=json, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.request("POST", path, json=json, **kwargs)

    def patch(self, path, json=None, **kwargs):
        return self.request("PATCH", path, json=json, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def ok(self, method: str, path: str, json=None, status: int | tuple = (200, 201), **kwargs) -> dict:
        """A request that must succeed; its JSON body."""
        response = self.request(method, path, json=json, **kwargs)
        expected = status if isinstance(status, tuple) else (status,)
        assert response.status_code in expected, f"{method} {path} → {response.status_code} {response.text}"
        return response.json()

    def login(self, email: str, password: str) -> Api:
        token = self.ok("POST", "/auth/login", {"email": email, "password": password})["access_token"]
        api = Api(self.base_url, token)
        api.me = api.ok("GET", "/me")
        return api

    def pages(self, path: str, limit: int = 50) -> list[dict]:
        """Every item of a list, following next_cursor."""
        items, cursor = [], None
        separator = "&" if "?" in path else "?"
        while True:
            url = f"{path}{separator}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
            page = self.ok("GET", url)
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items


@dataclass
class RunningSystem:
    process: subprocess.Popen
    base_url: str
    log_path: Path
    env: dict
    admin: Api = field(init=False)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 40) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def start_system(
    env_overrides: dict, log_path: Path, startup_timeout: float = 120, args: tuple[str, ...] = ()
) -> RunningSystem:
    """Start ``scripts/run.py`` (what ``make run`` runs, with ``args`` such as ``--replicas 2``) and wait until
    /health is ok."""
    port = int(env_overrides["CRM_HTTP_PORT"])
    env = dict(os.environ, PYTHONUNBUFFERED="1", **env_overrides)
    log = open(log_path, "w", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "scripts" / "run.py"), *args],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    system = RunningSystem(process, f"http://127.0.0.1:{port}/api/v1", log_path, env)
    deadline = time.monotonic() + startup_timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"scripts/run.py exited with {process.returncode}:\n{system.log()[-4000:]}")
        try:
            # healthy, and the runner has said so: what an operator waits for after `make run`
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=3).status_code == 200 and (
                "CRM is running" in system.log()
            ):
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            system.stop()
            raise RuntimeError(f"the CRM did not become healthy in {startup_timeout}s:\n{system.log()[-4000:]}")
        time.sleep(0.3)
    email = env.get("CRM_ADMIN_EMAIL", DEV_ADMIN_EMAIL)
    system.admin = Api(system.base_url).login(email, env.get("CRM_ADMIN_PASSWORD", DEV_ADMIN_PASSWORD))
    return system


def unique(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def phone_number(seed: int | None = None) -> str:
    """A fresh valid Russian mobile number."""
    n = seed if seed is not None else uuid.uuid4().int
    digits = f"{n % 10**7:07d}"
    return f"+7 91{(n // 10**7) % 10} {digits[:3]}-{digits[3:5]}-{digits[5:]}"
