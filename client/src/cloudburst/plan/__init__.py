"""A submission turned into job documents before anything is written: the scenario (``scenarios``), sampling
(``sampling``), Sobol' designs (``sensitivity``), adaptive waves (``adaptive``), alternatives (``alternatives``),
studies (``studies``), evaluation rounds' chunks (``rounds``), design and calibration studies (``design``,
``calibration``), members per batch from one timed run (``batching``), and the whole plan (``submission``).
It may import ``schema`` and ``engine``; never ``state``, ``worker``, ``api`` or ``cli``."""
