"""Ask a service over the bus whether it is healthy; the container health check of every nameko service.

    python -m crm_common.healthcheck clients

Exits 0 when ``<service>.health()`` answers within 5 s, else 1 with one line on stderr saying why.
With several replicas any one of them may answer: it tells whether the service works, not this copy.
"""

from __future__ import annotations

import logging
import sys
import warnings

TIMEOUT_S = 5


def check(service: str) -> str | None:
    """None if the service answers, else why not."""
    from nameko.exceptions import RpcTimeout
    from nameko.standalone.rpc import ClusterRpcProxy

    from crm_common.config import load_config

    try:
        with ClusterRpcProxy(load_config(), timeout=TIMEOUT_S) as cluster:
            cluster[service].health()
    except RpcTimeout:
        return f"no answer within {TIMEOUT_S}s"
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy, and is reported
        return f"{exc.__class__.__name__}: {exc}".replace("\n", " ")
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m crm_common.healthcheck <service>", file=sys.stderr)
        return 2
    # Docker keeps the probe's output as the health log: only our one line belongs there, not eventlet's
    # deprecation notice nor what amqp logs while closing a channel the broker returned a message on.
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    problem = check(args[0])
    if problem:
        print(f"{args[0]} is unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
