#!/usr/bin/env bash
# Set up everything thrifty needs on a fresh machine: a virtual environment with the project
# installed (editable, with test tools, the optional integrations its tests exercise:
# Lightning, Hugging Face transformers, submitit, Optuna for tuning, and the documentation
# site's tools: mkdocs-material, mkdocstrings) and the Fashion-MNIST Debian package.
# Idempotent: a second call only checks. Used by `make demo`, `make test`, `make docs` and
# `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
STAMP="$VENV/.thrifty-installed"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    echo "[setup] installing thrifty and its dependencies (torch comes from the local disk where available)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[dev,lightning,hf,submitit,docs,tune,attack]"
    touch "$STAMP"
fi

FMNIST_DIR=/usr/share/datasets/fashion-mnist
if [ ! -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ] && [ -z "${THRIFTY_DATA:-}" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "[setup] installing the Fashion-MNIST Debian package"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "[setup] Fashion-MNIST is missing. Install it with:"
        echo "    sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist"
        echo "or point THRIFTY_DATA at a folder holding the four *-ubyte.gz files."
    fi
fi
