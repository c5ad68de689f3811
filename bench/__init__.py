"""`make bench`: seed 100,000 clients and 1,000,000 deals, load the API next to a raw nameko RPC baseline,
time the stuck-deal scan, and write docs/benchmarks.md. See bench/__main__.py."""

import warnings

# nameko and eventlet warn about themselves on import; here the filters reach the load processes too
# (multiprocessing's spawn imports this package, not bench/__main__.py)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
