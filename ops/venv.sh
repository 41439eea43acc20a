# Sourced by ops/serve.sh and ops/test.sh: make .venv and install the hub into it.
#
# ensure_installed SPEC NAME [NAME...]
#   Creates .venv if it is missing, then runs `pip install -e SPEC` unless an
#   install recorded under one of the NAMEs (a stamp file in .venv holding a
#   checksum of pyproject.toml) matches the current pyproject.toml. A restart
#   therefore needs no package index; a fresh machine, a new .venv or a changed
#   pyproject.toml installs everything. Delete .venv/.hub-installed-* to force it.
ensure_installed() {
    local spec=$1 name=$2 python=${PYTHON:-python3} want stamp
    shift
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv
    fi
    want=$(cksum < pyproject.toml)
    for stamp in "$@"; do
        if [ -f ".venv/.hub-installed-$stamp" ] && [ "$(cat ".venv/.hub-installed-$stamp")" = "$want" ]; then
            return 0
        fi
    done
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
    printf '%s\n' "$want" > ".venv/.hub-installed-$name"
}
