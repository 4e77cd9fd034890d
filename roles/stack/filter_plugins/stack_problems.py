"""stack_problems: what keeps a deployed stack from having converged, one sentence per service or task."""
from __future__ import annotations


def stack_problems(tasks: list[dict], services: list[str], stack: str, worker_nodes: list[str]) -> list[str]:
    """tasks: docker_stack_task_info results (Name, Node, DesiredState, CurrentState, Error)."""
    problems = []
    running: dict[str, set[str]] = {service: set() for service in services}
    for task in tasks:
        service = task["Name"].split(".", 1)[0].removeprefix(f"{stack}_")
        if task.get("DesiredState") != "Running":
            continue
        if task.get("CurrentState", "").startswith("Running"):
            running.setdefault(service, set()).add(task.get("Node", ""))
        else:
            error = task.get("Error") or "no error reported"
            problems.append(f"service {service} on node {task.get('Node') or '(unassigned)'} is "
                            f"{task.get('CurrentState', 'unknown').split(' ')[0].lower()}: {error}")
    for service in services:
        if not running.get(service):
            problems.append(f"service {service} runs no task")
    missing = sorted(set(worker_nodes) - running.get("worker", set()))
    if "worker" in services and missing:
        problems.append(f"service worker runs no task on {', '.join(missing)}")
    return problems


class FilterModule:
    def filters(self) -> dict:
        return {"stack_problems": stack_problems}
