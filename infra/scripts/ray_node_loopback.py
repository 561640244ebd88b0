"""`ray start` for a test cluster whose nodes all live on 127.0.0.1.

Ray binds every server to the node's address only when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
(otherwise it swaps 127.0.0.1 for the host's address and listens on all interfaces), but
with that setting its CLI refuses to join a second node to a cluster. For the tests' two-node
cluster on one host, this runs Ray's own CLI with that one check lifted; the nodes then run
unchanged. Not for real clusters, which join nodes over the network as usual.
"""

import sys
import types

import ray._private.ray_constants as constants
import ray.scripts.scripts as scripts


class _Constants(types.ModuleType):
    """Ray's constants, except that multi-node clusters are allowed."""

    ENABLE_RAY_CLUSTER = True

    def __getattr__(self, name):
        return getattr(constants, name)


scripts.ray_constants = _Constants("ray_constants")
sys.exit(scripts.main())
