"""One member on EPANET, on a worker or on the client: the warm engine (``warm``, models kept open in EPANET 2.3's
toolkit: ``toolkit``), the file path through wntr and a batch's run (``batch``), EPANET's output file
(``epanet_output``), alterations (``alterations``), pattern windows (``windows``), a member's checks (``checks``),
its results (``results``), reading models (``models``), and the studies' kernels (``fireflow``, ``segments``). It
may import ``schema`` and ``state``; never ``plan``, ``worker``, ``api`` or ``cli``."""
