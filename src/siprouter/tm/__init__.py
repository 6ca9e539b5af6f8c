"""tm: the SIP transaction layer (RFC 3261 section 17), sans-IO.

:class:`~.table.TransactionTable` holds the transactions of one process and
runs their state machines and timers; :mod:`.messages` builds what tm sends
on its own. The cfg/KEMI glue is :mod:`siprouter.modules.tm`.
"""

from .table import TmConfig, TmHooks, TransactionTable
from .transaction import ClientBranch, Transaction

__all__ = ["ClientBranch", "TmConfig", "TmHooks", "Transaction", "TransactionTable"]
