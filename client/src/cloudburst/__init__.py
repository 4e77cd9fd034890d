"""CloudBurst: EPANET ensembles on a Docker Swarm."""

__version__ = "0.1.0"
