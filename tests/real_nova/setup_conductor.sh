#!/usr/bin/env bash
# Set up a real nova-conductor 34.0.0 for tests/real_nova/test_real_conductor.py:
#   1. a virtualenv with nova==34.0.0 from PyPI, outside the repository
#      ($CACHEMGR_NOVA_VENV, default /opt/nova34-venv);
#   2. its SQLite databases in $CACHEMGR_NOVA_VENV/cachemgr-real-nova/: the
#      API database, cell0 and cell1 (nova-manage api_db sync, cell_v2
#      map_cell0, db sync, cell_v2 create_cell), cell1 seeded with
#      scenario.py's instances by seed_nova_db.py (nova's own objects).
# Idempotent: an existing nova 34 venv is kept, and the databases are rebuilt
# only when scenario.py or seed_nova_db.py changed (or with --force).
# Needs python3 >= 3.10 with venv, and PyPI. No broker is needed here: the
# test starts the conductor, on a RabbitMQ vhost of its own.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="${CACHEMGR_NOVA_VENV:-/opt/nova34-venv}"
data="$venv/cachemgr-real-nova"
python="${CACHEMGR_NOVA_PYTHON:-python3}"
nova_version="34.0.0"
force=false
[ "${1:-}" = "--force" ] && force=true

started=$(date +%s.%N)
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }

# -- 1. the virtualenv ---------------------------------------------------------
installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("nova"))' 2>/dev/null || true)"
if [ "$installed" = "$nova_version" ] && [ -x "$venv/bin/nova-conductor" ]; then
    echo "venv: $venv already has nova $nova_version"
    install_s=0
else
    t0=$(date +%s.%N)
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || { echo "nova $nova_version needs Python >= 3.10 ($python)" >&2; exit 1; }
    rm -rf "$venv"
    "$python" -m venv "$venv"
    pip_log="$(mktemp)"
    "$venv/bin/pip" install "nova==$nova_version" >"$pip_log" 2>&1 \
        || { echo "pip install nova==$nova_version failed:" >&2; tail -30 "$pip_log" >&2; exit 1; }
    rm -f "$pip_log"
    install_s=$(elapsed "$t0")
    echo "venv: installed nova $nova_version in $venv in ${install_s}s"
fi

# -- 2. the databases ----------------------------------------------------------
stamp="$data/seeded.json"
want="$(cat "$here/scenario.py" "$here/seed_nova_db.py" | sha256sum | cut -d' ' -f1)"
have="$("$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["scenario_sha256"])' "$stamp" 2>/dev/null || true)"
if [ "$have" = "$want" ] && ! $force; then
    echo "databases: $data is up to date with scenario.py"
    db_s=0
else
    t0=$(date +%s.%N)
    rm -rf "$data"
    mkdir -p "$data/state" "$data/lock"
    cat > "$data/nova-manage.conf" <<EOF
[DEFAULT]
# Stored in the cell mapping only; the test's conductor has its own.
transport_url = rabbit://guest:guest@127.0.0.1:5672/
state_path = $data/state
[api_database]
connection = sqlite:///$data/api.db
[database]
connection = sqlite:///$data/nova.db
[oslo_concurrency]
lock_path = $data/lock
EOF
    log="$data/setup.log"
    manage() { "$venv/bin/nova-manage" --config-file "$data/nova-manage.conf" "$@" >>"$log" 2>&1 \
        || { echo "nova-manage $* failed; see $log:" >&2; tail -20 "$log" >&2; exit 1; }; }
    manage api_db sync
    manage cell_v2 map_cell0 --database_connection "sqlite:///$data/cell0.db"
    manage db sync
    manage cell_v2 create_cell --name cell1
    "$venv/bin/python" "$here/seed_nova_db.py" --config-file "$data/nova-manage.conf" \
        >"$data/seeded-rows.json" 2>>"$log" \
        || { echo "seeding failed; see $log:" >&2; tail -20 "$log" >&2; exit 1; }
    db_s=$(elapsed "$t0")
    # Written last: the test treats a directory without it as not set up.
    "$venv/bin/python" - "$stamp" "$want" "$nova_version" "$data/seeded-rows.json" <<'EOF'
import json, sys
stamp, digest, version, rows = sys.argv[1:]
with open(rows) as f:
    seeded = json.load(f)
with open(stamp + ".tmp", "w") as f:
    json.dump({"nova_version": version, "scenario_sha256": digest, "seeded": seeded}, f, indent=1)
import os
os.rename(stamp + ".tmp", stamp)
EOF
    echo "databases: created and seeded in ${db_s}s ($data)"
fi

echo "setup_conductor: done in $(elapsed "$started")s (pip install ${install_s}s, databases ${db_s}s)"
echo "run: python -m pytest -m real_nova tests/real_nova -v   (CACHEMGR_NOVA_VENV=$venv)"
