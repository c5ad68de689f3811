"""The baselines: the cheapest possible nameko RPC, started with `nameko run` in the benchmark's vhost.

``bench_echo`` is raw nameko (its ``rpc`` entrypoint, replies published with confirms). ``bench_echo_crm``
uses the services' own entrypoint (crm_common.rpc), which replies without publisher confirms: the bar for
what the CRM's RPC stack can do when a method does no work. Both share config.yml (serializer,
max_workers) with the real services, so what separates their numbers from the services' is the work the
CRM does per request.
"""

from nameko.rpc import rpc

from crm_common.rpc import rpc as crm_rpc


class EchoService:
    name = "bench_echo"

    @rpc
    def echo(self, value):
        return value


class CrmEchoService:
    name = "bench_echo_crm"

    @crm_rpc
    def echo(self, value):
        return value
