"""With ``[chunk_store] passphrase`` set, nothing of the protected data is readable in the
bank: no file content, no file name below the protected directory; and the checkpoint
still restores byte for byte with that passphrase."""

from __future__ import annotations

import os
import shutil
import uuid

from tests.functional._server import karbor_server
from tests.functional.test_local_directory import (  # noqa: F401  (local_env is a fixture)
    LOCAL_PROVIDER,
    TYPE,
    Client,
    _snapshot,
    local_env,
)

# Distinctive strings: they must not appear in any object of the bank.
SECRET_TEXT = "confidential-payroll-figure-8b7c1e"
SECRET_NAME = "salaries-of-board-members-4f2a"


def _bank_bytes(bank) -> bytes:
    return b"\n".join(f.read_bytes() for f in sorted(bank.rglob("*")) if f.is_file())


def test_encrypted_bank_holds_no_plaintext(local_env):  # noqa: F811
    tmp, providers, roots = local_env
    with open(providers / "local.conf", "a") as f:
        f.write("\n[chunk_store]\npassphrase = correct horse battery staple\n")
    source = roots / "finance"
    (source / SECRET_NAME).mkdir(parents=True)
    # Compressible and incompressible content, small and large files, a secret file name.
    (source / SECRET_NAME / f"{SECRET_NAME}.txt").write_text((SECRET_TEXT + "\n") * 50_000)
    (source / "short.txt").write_text(SECRET_TEXT)
    (source / "mixed.bin").write_bytes(b"".join(
        SECRET_TEXT.encode() + os.urandom(4000) for _ in range(500)))
    expected = _snapshot(source)
    project = uuid.uuid4().hex
    with karbor_server({"DEFAULT": {"provider_config_dir": providers},
                        "local_directory": {"roots": roots}}) as srv:
        api = Client(srv.url, project)
        resource = api.call("GET", f"protectables/{TYPE}/instances")["instances"][0]
        plan = api.call("POST", "plans", {"plan": {
            "name": "enc", "provider_id": LOCAL_PROVIDER,
            "resources": [{"id": resource["id"], "type": TYPE, "name": resource["name"],
                           "extra_info": resource.get("extra_info") or {}}]}})["plan"]
        cp_id = api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints",
                         {"checkpoint": {"plan_id": plan["id"]}})["checkpoint"]["id"]
        cp = api.checkpoint(cp_id)
        assert cp["status"] == "available", (cp, srv.log()[-3000:])

        stored = _bank_bytes(tmp / "bank")
        assert len(stored) > 2_000_000  # the data is there...
        for needle in (SECRET_TEXT, SECRET_NAME):
            for form in (needle.encode(), needle.encode("utf-16-le")):
                assert form not in stored, f"{needle!r} readable in the bank"  # ...sealed

        shutil.rmtree(source)
        target = roots / "restored"
        done = api.restore(cp_id, {"restore_path": str(target)})
        assert done["status"] == "success", done
        assert _snapshot(target) == expected
