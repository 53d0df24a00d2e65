"""A Python program using the OCI Python SDK (PyPI `oci`) the way users' programs do: a
session-token profile from ~/.oci/config (SecurityTokenSigner with the token read once, as the
SDK's documentation shows), Object Storage puts in a loop for SDK_TEST_SECONDS. It prints one JSON
line and exits 0, or 3 at the first failed request (with its HTTP status and when it happened).

Environment: OCI_CLI_PROFILE (woci --exec sets it), OCI_CLI_CONFIG_FILE (default ~/.oci/config),
SDK_TEST_BUCKET, SDK_TEST_SECONDS.
"""
import json
import os
import sys
import time

import oci


def main():
    start = time.time()
    res = {"ok": False, "puts": 0, "elapsed": 0.0, "sdk": oci.__version__}

    def finish(err):
        res["elapsed"] = time.time() - start
        if err is not None:
            res["error"] = str(getattr(err, "message", err)).splitlines()[0] if str(err) else type(err).__name__
            if getattr(err, "status", None):
                res["status"] = err.status
        else:
            res["ok"] = True
        print(json.dumps(res), flush=True)
        sys.exit(3 if err is not None else 0)

    try:
        config_file = os.environ.get("OCI_CLI_CONFIG_FILE") or os.path.expanduser("~/.oci/config")
        config = oci.config.from_file(config_file, os.environ.get("OCI_CLI_PROFILE") or "DEFAULT")
        with open(os.path.expanduser(config["security_token_file"])) as f:
            token = f.read().strip()
        key = oci.signer.load_private_key_from_file(config["key_file"])
        signer = oci.auth.signers.SecurityTokenSigner(token, key)
        client = oci.object_storage.ObjectStorageClient({"region": config["region"]}, signer=signer)
        ns = client.get_namespace().data
        bucket = os.environ["SDK_TEST_BUCKET"]
        body = b"woci-sdk-python " * 100
        deadline = start + float(os.environ.get("SDK_TEST_SECONDS", "10"))
        while time.time() < deadline:
            client.put_object(ns, bucket, "python-put-%d" % res["puts"], body)
            res["puts"] += 1
            time.sleep(0.2)
    except Exception as e:  # noqa: BLE001 - the program reports any failure as its result
        finish(e)
    finish(None)


if __name__ == "__main__":
    main()
