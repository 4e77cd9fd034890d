"""The README's first commands on a bare Debian 12 host, as a stranger runs them.

A container of the bare-host image (Debian from debootstrap plus python3: nothing this project installs) gets
what this machine has to reach the package registries (its extra CA certificates, trusted with Debian's
ca-certificates) and a clean copy of the committed tree (`git archive HEAD`), nothing else. Then the set-up lines
of the README's "Two commands" block run there as root, exactly as written, and what the run printed is held
against the output the README quotes.

The one thing the container needs that a real host has anyway is an init that reaps orphaned processes
(`docker run --init`): without systemd the docker_engine role runs dockerd as a plain daemon, and a stopped
dockerd whose parent is a non-reaping PID 1 stays a zombie that start-stop-daemon waits for in vain.
"""
from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
CHECKOUT = "/root/cloudburst"
# What --privileged would give, less what this kernel refuses: the Molecule scenarios' list.
CAPABILITIES = [
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH",
    "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE",
    "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID",
    "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO",
    "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM"]


def readme_block(heading: str) -> list[str]:
    """The lines of the first fenced block after a heading of the README, comments stripped."""
    text = README.read_text()
    section = text.split(f"\n{heading}\n", 1)[1]
    block = re.search(r"```(?:sh|console)?\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def readme_demo_output() -> str:
    """The block the README introduces with "What you will see at the end"."""
    text = README.read_text()
    return re.search(r"What you will see at the end:\n\n```\n(.*?)```", text, re.S).group(1)


class BareHost:
    def __init__(self, image: str):
        self.name = f"cb-fresh-{uuid.uuid4().hex[:8]}"
        subprocess.run(["docker", "run", "-d", "--init", "--name", self.name, "--hostname", "cb-fresh",
                        *[f"--cap-add={capability}" for capability in CAPABILITIES],
                        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                        "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/docker",
                        image], check=True, capture_output=True, text=True)

    def run(self, command: str, timeout: int = 600, workdir: str = "/root") -> subprocess.CompletedProcess:
        """A login shell as root, as a user at the host's console; no variable of this machine is passed in."""
        return subprocess.run(["docker", "exec", "-w", workdir, self.name, "bash", "-lc", command],
                              capture_output=True, text=True, timeout=timeout)

    def copy_in(self, source: Path, target: str) -> None:
        copied = subprocess.run(["docker", "cp", str(source), f"{self.name}:{target}"], capture_output=True, text=True)
        assert copied.returncode == 0, f"docker cp {source} {target}: {copied.stderr}"

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", "-v", self.name], capture_output=True)


def trust_host_registries(host: BareHost) -> None:
    """This machine reaches the package registries through its extra CAs: give the host the same trust."""
    assert host.run(f"mkdir -p {HOST_CA_DIR}").returncode == 0
    for certificate in sorted(HOST_CA_DIR.glob("*.crt")):
        host.copy_in(certificate, f"{HOST_CA_DIR}/{certificate.name}")
    trusted = host.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates"
                       " >/dev/null && update-ca-certificates")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr


def put_clean_checkout(host: BareHost, scratch: Path) -> None:
    """What `git clone` gives: the committed tree, without this checkout's venv, images or secrets."""
    archive = scratch / "cloudburst.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), "HEAD"], cwd=REPO, check=True)
    host.copy_in(archive, "/root/cloudburst.tar")
    unpacked = host.run(f"mkdir {CHECKOUT} && tar -C {CHECKOUT} -xf /root/cloudburst.tar && rm /root/cloudburst.tar")
    assert unpacked.returncode == 0, unpacked.stderr


@pytest.fixture(scope="module")
def bare_host(tmp_path_factory):
    host = BareHost("cloudburst/bare-host:bookworm")
    try:
        trust_host_registries(host)
        put_clean_checkout(host, tmp_path_factory.mktemp("archive"))
        yield host
    finally:
        host.remove()


@pytest.fixture(scope="module")
def first_demo(bare_host, tmp_path_factory):
    """The README's set-up lines, in order, up to and including `make demo` (not `make test`). What the demo printed
    is kept in demo-output.txt under pytest's temporary directory (the README quotes it)."""
    runs = []
    for line in readme_block("## Two commands"):
        if line.startswith("make test"):
            continue
        result = bare_host.run(line, timeout=3600, workdir=CHECKOUT)
        runs.append(result)
        assert result.returncode == 0, f"`{line}` failed on a bare Debian 12 host:\n{(result.stdout + result.stderr)[-6000:]}"
    kept = tmp_path_factory.mktemp("demo") / "demo-output.txt"
    kept.write_text(runs[-1].stderr[-3000:] + "\n" + runs[-1].stdout)
    print(f"the demo's output: {kept}")
    return runs[-1]


def worst_rows(output: str) -> dict[str, list[str]]:
    """The worst-members table's rows by member, as printed (each value at its printed precision)."""
    table = output.split("worst (lowest minimum pressure) first:\n", 1)[1]
    rows = {}
    for line in table.splitlines()[1:]:
        cells = line.split()
        if not cells or not cells[0].isdigit():
            break
        rows[cells[0]] = cells
    return rows


def test_the_readme_names_every_prerequisite_and_make_demo_finishes_on_a_bare_host(first_demo):
    assert "make demo" in readme_block("## Two commands")
    assert first_demo.returncode == 0


def test_make_demo_prints_what_the_readme_says_a_user_sees(bare_host, first_demo):
    quoted = readme_demo_output()
    printed = first_demo.stdout + first_demo.stderr
    progress = re.search(r"\] (\d+/\d+  finished \d+  failed \d+)", quoted).group(1)
    assert progress in printed
    assert "200 members, worst (lowest minimum pressure) first:" in printed
    quoted_rows, printed_rows = worst_rows(quoted), worst_rows(printed)
    assert quoted_rows, "the README quotes no worst member"
    for member, cells in quoted_rows.items():
        assert printed_rows.get(member) == cells, f"README row {cells}, run printed {printed_rows.get(member)}"
    assert list(printed_rows)[:len(quoted_rows)] == list(quoted_rows)  # the same members, worst first
    assert re.search(r"^\d+ time steps across up to 200 members written to demo-fan-chart\.png$", printed, re.M)
    line_shape = r"^ensemble net3-demand-roughness-\d{8}-\d{6}: fan chart of pressure at node 123 in demo-fan-chart\.png$"
    assert re.search(line_shape, quoted, re.M), "the README's ensemble line changed shape"
    assert re.search(line_shape, printed, re.M)
    chart = bare_host.run(f"head -c 8 {CHECKOUT}/demo-fan-chart.png | od -An -tx1")
    assert chart.stdout.split() == ["89", "50", "4e", "47", "0d", "0a", "1a", "0a"]


def test_make_demo_again_submits_a_new_ensemble_without_redeploying(bare_host, first_demo):
    # A re-deploy replaces containers (a changed image, config or secret restarts the service's tasks); `docker
    # stack deploy` bumps each service's version even when nothing changed, so the containers are what is compared.
    containers = "docker ps --no-trunc --format '{{.ID}} {{.Image}} {{.CreatedAt}}' | sort"
    before = bare_host.run(containers)
    assert before.returncode == 0 and len(before.stdout.splitlines()) >= 5, before.stdout + before.stderr
    again = bare_host.run("make demo", timeout=1800, workdir=CHECKOUT)
    assert again.returncode == 0, (again.stdout + again.stderr)[-6000:]
    recaps = re.findall(r"^localhost\s+: ok=\d+\s+changed=(\d+)", again.stdout, re.M)
    assert recaps and set(recaps) == {"0"}, f"site.yml and push-env changed something on a re-run: {recaps}"
    assert bare_host.run(containers).stdout == before.stdout  # no container replaced
    ensembles = [re.findall(r"^ensemble (\S+): fan chart", run.stdout, re.M) for run in (first_demo, again)]
    assert ensembles[0] and ensembles[1] and ensembles[0] != ensembles[1]


def test_a_stack_that_cannot_converge_fails_naming_service_node_and_error(bare_host, first_demo):
    """On the demo's one-host cluster: site.yml reports a stack that cannot converge with the service, the node and
    the task's error, and a normal re-run brings it back."""
    site = ".venv/bin/ansible-playbook -i inventory/local site.yml --tags stack"
    # More CPUs than this machine has: swarm accepts the service, but Docker rejects every worker container.
    broken = bare_host.run(f"{site} -e stack_worker_cpus=64 -e stack_converge_timeout_s=20", timeout=1200,
                           workdir=CHECKOUT)
    try:
        output = re.sub(r"\s+", " ", broken.stdout)
        assert broken.returncode != 0
        match = re.search(r"msg: 'The stack did not converge within 20 s: (.*?)'", output)
        assert match, output[-3000:]
        assert "service worker on node cb-fresh is not running (rejected: " in match.group(1), match.group(1)
        assert "range of cpus" in match.group(1).lower()  # Docker's own error: "Range of CPUs is from 0.01 to ..."
        assert "service redis" not in match.group(1)  # the healthy services are not blamed
    finally:
        restored = bare_host.run(site, timeout=1200, workdir=CHECKOUT)
    assert restored.returncode == 0, restored.stdout[-4000:]
