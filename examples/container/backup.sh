#!/usr/bin/env bash
# The nightly backup of the people who run `oci` from the official container image, with woci.
#
# Before (dies with 401 NotAuthenticated once the session token the upload started with expires,
# whatever a background `oci session refresh` loop does):
#   docker run --rm --user $(id -u):$(id -g) \
#       -v "${OCI_CONFIG_DIR}:/oracle/.oci" -v "${TEMP_DIR}:/backup" "${OCI_CLI_IMAGE}" \
#       os object put --bucket-name "$B" --namespace "$NS" --file "/backup/$F" --name "$F" \
#       --storage-tier Archive --no-overwrite --part-size 128 --parallel-upload-count 15 \
#       --verify-checksum --auth security_token --region "$R" --debug 2>&1 | tee -a last_backup.log
#
# After: the same `oci` arguments after `woci --auto-refresh`. woci runs the container itself
# (`oci_container_image` in woci_manager.ini, see woci_manager.ini here; the `-v` for /backup is in
# `oci_container_args`), renews the session on the host while the upload runs, and re-signs the
# container's requests with each new token through its local proxy. No refresh loop is needed.
#
# Environment: B (bucket), NS (namespace), R (region), F (file name in TEMP_DIR),
# OCI_CLI_PROFILE (the profile; default DEFAULT).
set -euo pipefail   # the exit code is woci's (oci's), not tee's: systemd and cron see a failed upload
: "${B:?bucket}" "${NS:?namespace}" "${R:?region}" "${F:?file name}"

woci --auto-refresh \
    os object put --bucket-name "$B" --namespace "$NS" --file "/backup/$F" --name "$F" \
    --storage-tier Archive --no-overwrite --part-size 128 --parallel-upload-count 15 \
    --verify-checksum --auth security_token --region "$R" --debug 2>&1 | tee -a last_backup.log
