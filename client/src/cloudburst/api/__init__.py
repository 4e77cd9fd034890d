"""The client's handles: ``Client`` (``client``) builds the ``Services`` (``services``) once and executes a plan;
``Ensemble`` and ``Alternatives`` (``ensemble``), ``TaskSet`` (``taskset``), studies (``studies``) and adaptive
``Waves`` (``waves``) hold the services, and share their verbs (``submitted``); evaluation rounds (``evaluation``,
with optimizer adapters in ``optimize``) and the searches built on them, ``Design`` (``design``) and
``Calibration`` (``calibration``), which share their record and stored generations (``search``); the queue as the
client uses it (``queue``) and progress displays (``progress``). It may import ``schema``, ``state``, ``engine``
and ``plan``; never ``worker`` or ``cli``. The public names are ``cloudburst``'s."""
