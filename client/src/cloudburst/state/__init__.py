"""The cluster's shared state, one owner per Redis key or file layout: the ensembles' and task sets' records
(``records``), what ran and finished (``ledger``), the results store's files (``store``) and reading them
(``reader``), InfluxDB (``influx``), the file service's model files (``files``), a worker's verified copies
(``models``), evaluation rounds' replies (``rounds``) and the connections clients block on (``blocking``). It may
import ``schema``; never ``engine``, ``plan``, ``worker``, ``api`` or ``cli``."""
