"""The emulator's state: one SQLite database (sqlite-utils) and one backend per area of the API.

``Store`` is the composition root. It is the database itself (``db.Database``: connection, lock, clock,
transactions, snapshots, reset) and holds the backends, each named after what it serves:

- ``store.management``: DCP services, tables (datasources), attributes, projects (management.py);
- ``store.profiles``: profile reads and writes, aliases, the consolidated view (profiles.py);
- ``store.uploads``: bulk-upload targets and the Upload History (uploads.py);
- ``store.credentials``: accounts, API tokens, AWS key pairs (credentials.py);
- ``store.profile_tables``: the wide per-table profile storage they share (profile_tables.py).

The store never imports Flask. Each public backend method is one operation (``db.operation``): one
transaction from its first read to its last write, under the store's lock.
"""

from __future__ import annotations

from ..clock import Clock
from .credentials import TOKEN_KINDS, Credentials, aws_key_pair
from .db import Database, Snapshot, now
from .management import OPTIMIZELY_TABLE, Management
from .profile_tables import ProfileTables, column_decl, from_column, profile_table, to_column, value_column
from .profiles import MAX_CUSTOMER_ID_LENGTH, PatchError, Profiles, profile_patch
from .uploads import Uploads

__all__ = ["MAX_CUSTOMER_ID_LENGTH", "OPTIMIZELY_TABLE", "TOKEN_KINDS", "PatchError",
           "Snapshot", "Store", "aws_key_pair", "column_decl", "from_column", "now", "profile_patch",
           "profile_table", "to_column", "value_column"]


class Store(Database):
    """All emulator state: the database plus one backend per area."""

    def __init__(self, path: str | None = None, max_services_per_account: int = 1,
                 upload_history_size: int | None = None, clock: Clock | None = None):
        super().__init__(path, clock)
        self.profile_tables = ProfileTables(self)
        self.management = Management(self, self.profile_tables, max_services_per_account)
        self.profiles = Profiles(self, self.profile_tables, self.management)
        self.uploads = Uploads(self, self.profile_tables, upload_history_size)
        self.credentials = Credentials(self)
