"""Confidential tasks on Ray: ``cchet.init``, ``@cchet.remote``, ``cchet.get``, ``cchet.put``.

Imported lazily by :mod:`cchet` (this package imports Ray only when a session starts or a task is
submitted).
"""

from cchet.runtime.objects import get, put
from cchet.runtime.remote import RemoteFunction, remote
from cchet.runtime.sealedref import SealedRef
from cchet.runtime.session import init, shutdown

__all__ = ["RemoteFunction", "SealedRef", "get", "init", "put", "remote", "shutdown"]
