"""What the client and the workers agree on, as data: a member's job document (``job``), a batch of members
(``batch``), a task pack (``taskpack``), the results' tables and statistics points (``resultformat``), an
evaluation round and its replies (``evaluation``), a design or calibration study's stored tables (``search``), and
the queue contract: every queue name, entry point, job ID and serializer (``queues``). Pure: it imports ``errors`` and
itself, never ``state``, ``engine``, ``worker``, ``plan``, ``api`` or ``cli``."""
