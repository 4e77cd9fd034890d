#!/usr/bin/env bash
# Run one of the stack scenario's test directories again against its live cluster, e.g. after
#   .venv/bin/molecule converge -s stack && .venv/bin/ansible-playbook -i <its inventory> push-env.yml
# usage: molecule/stack/verify-live.sh tests/faults [pytest options...]
set -euo pipefail
cd "$(dirname "$0")/../.."
ephemeral=$(ls -d "${ANSIBLE_LOCAL_TEMP:-$HOME/.ansible/tmp}"/molecule.*.stack 2>/dev/null | head -1)
[[ -n $ephemeral ]] || { echo "no live stack scenario: run .venv/bin/molecule converge -s stack first" >&2; exit 1; }
export PATH=$PWD/.venv/bin:$PATH
export MOLECULE_EPHEMERAL_DIRECTORY=$ephemeral
export MOLECULE_INVENTORY_FILE=$ephemeral/inventory/ansible_inventory.yml
export MOLECULE_SCENARIO_DIRECTORY=$PWD/molecule/stack
directory=$1
shift
exec python -m pytest -p no:cacheprovider -s --connection=ansible --ansible-inventory="$MOLECULE_INVENTORY_FILE" \
  "molecule/stack/$directory" "$@"
