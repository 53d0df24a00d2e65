// A Node.js program using the OCI TypeScript/JavaScript SDK (npm oci-common, oci-objectstorage) the
// way users' programs do: a session-token profile from ~/.oci/config (SessionAuthDetailProvider,
// which reads the token once), Object Storage puts in a loop for SDK_TEST_SECONDS, with the SDK's
// default transport (Node's built-in fetch). It prints one JSON line and exits 0, or 3 at the first
// failed request (with its HTTP status and when it happened).
//
// Environment: OCI_CLI_PROFILE (woci --exec sets it), OCI_CLI_CONFIG_FILE (default ~/.oci/config),
// SDK_TEST_BUCKET, SDK_TEST_SECONDS.
'use strict';
const os = require('os');
const path = require('path');
const common = require('oci-common');
const objectstorage = require('oci-objectstorage');

async function main() {
  const start = Date.now();
  const res = { ok: false, puts: 0, elapsed: 0, node: process.version };
  const finish = (err) => {
    res.elapsed = (Date.now() - start) / 1000;
    if (err) {
      res.error = String(err.message || err).split('\n')[0];
      if (err.statusCode) res.status = err.statusCode;
    } else {
      res.ok = true;
    }
    console.log(JSON.stringify(res));
    process.exit(err ? 3 : 0);
  };
  try {
    const config = process.env.OCI_CLI_CONFIG_FILE || path.join(os.homedir(), '.oci', 'config');
    const profile = process.env.OCI_CLI_PROFILE || 'DEFAULT';
    const provider = new common.SessionAuthDetailProvider(config, profile);
    const client = new objectstorage.ObjectStorageClient({ authenticationDetailsProvider: provider });
    const ns = (await client.getNamespace({})).value;
    const bucket = process.env.SDK_TEST_BUCKET;
    const body = Buffer.from('woci-sdk-node '.repeat(100));
    const deadline = start + Number(process.env.SDK_TEST_SECONDS || 10) * 1000;
    while (Date.now() < deadline) {
      await client.putObject({
        namespaceName: ns,
        bucketName: bucket,
        objectName: `node-put-${res.puts}`,
        contentLength: body.length,
        putObjectBody: body,
      });
      res.puts++;
      await new Promise((r) => setTimeout(r, 200));
    }
    finish(null);
  } catch (err) {
    finish(err);
  }
}

main();
