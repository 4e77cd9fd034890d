"""The client's handles: ``Client`` (``client``) builds the ``Services`` (``services``) once and executes a plan;
``Ensemble`` and ``Alternatives`` (``ensemble``), ``TaskSet`` (``taskset``), studies (``studies``) and adaptive
``Waves`` (``waves``) hold the services, and share their verbs (``submitted``); the queue as the client uses it
(``queue``) and progress displays (``progress``). It may import ``schema``, ``state``, ``engine`` and ``plan``;
never ``worker`` or ``cli``. The public names are ``cloudburst``'s."""
