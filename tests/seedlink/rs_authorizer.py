"""ringserver's ``AuthCommand`` for the tests: ``rs_authorizer.py USERS.json``.

ringserver passes the credentials in ``AUTH_USERNAME``/``AUTH_PASSWORD`` or ``AUTH_JWTOKEN`` and
reads a JSON object on stdout (``authenticated``, ``allowed_streams``, ...; see ringserver's
``auth/README.md``). USERS.json: ``{"users": {NAME: {"password": P, "allowed_streams": [...]}},
"tokens": {TOKEN: {"name": N, "allowed_streams": [...]}}}`` (plain text: a test fixture).
"""

from __future__ import annotations

import json
import os
import sys


def main(path: str) -> None:
    with open(path) as f:
        db = json.load(f)
    user, password = os.environ.get("AUTH_USERNAME"), os.environ.get("AUTH_PASSWORD")
    token = os.environ.get("AUTH_JWTOKEN")
    entry = None
    if user is not None:
        candidate = db.get("users", {}).get(user)
        if candidate is not None and candidate.get("password") == password:
            entry = candidate
    elif token is not None:
        entry = db.get("tokens", {}).get(token)
    out = {"authenticated": entry is not None, "write_permission": False,
           "trust_permission": False}
    if entry is not None and "allowed_streams" in entry:
        out["allowed_streams"] = entry["allowed_streams"]
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
