"""stack_problems: what keeps a deployed stack from having converged, one sentence per service and node."""
from __future__ import annotations


def _service(name: str, stack: str) -> str:
    # History rows of `docker stack ps` may carry a "\_ " prefix.
    return name.lstrip("\\_ ").split(".", 1)[0].removeprefix(f"{stack}_")


def stack_problems(tasks: list[dict], services: list[str], stack: str, worker_nodes: list[str]) -> list[str]:
    """tasks: docker_stack_task_info results (Name, Node, DesiredState, CurrentState, Error), newest first."""
    running: dict[str, set[str]] = {service: set() for service in services}
    pending: dict[tuple[str, str], str] = {}
    last_error: dict[tuple[str, str], str] = {}
    for task in tasks:
        service, node = _service(task["Name"], stack), task.get("Node") or "(unassigned)"
        state = (task.get("CurrentState") or "unknown").split(" ")[0].lower()
        if task.get("Error") and (service, node) not in last_error:
            last_error[(service, node)] = f"{state}: {task['Error']}"
        if task.get("DesiredState") != "Running":
            continue
        if state == "running":
            running.setdefault(service, set()).add(node)
        else:
            pending.setdefault((service, node), state)

    def why(service: str, node: str | None = None) -> str:
        errors = [error for (name, where), error in last_error.items()
                  if name == service and (node is None or where == node)]
        return errors[0] if errors else "no error reported"

    problems = []
    for (service, node), state in pending.items():
        if node not in running.get(service, set()):
            problems.append(f"service {service} on node {node} is {state} ({why(service, node)})")
    for service in services:
        if service == "worker":
            missing = [node for node in sorted(worker_nodes) if node not in running["worker"]]
            problems += [f"service worker on node {node} is not running ({why('worker', node)})"
                         for node in missing if ("worker", node) not in pending]
        elif not running.get(service) and not any(name == service for name, _ in pending):
            problems.append(f"service {service} runs no task ({why(service)})")
    return problems


class FilterModule:
    def filters(self) -> dict:
        return {"stack_problems": stack_problems}
