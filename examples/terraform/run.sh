#!/bin/sh
# terraform under woci: the session is made valid before Terraform starts and kept valid until it
# exits (renewed at the safety window before each expiry), however long the apply takes.
#
# woci sets OCI_CLI_PROFILE / OCI_CLI_AUTH / OCI_CLI_CONFIG_FILE for the child unless you set them,
# so `oci` calls from local-exec provisioners use the same session.
#
# The provider re-reads the token file, so it does not need woci's re-signing proxy;
# `--no-resign-proxy` keeps Terraform's traffic direct. Drop it if a provisioner runs a long `oci`
# command that must survive a renewal.
set -eu
cd "$(dirname "$0")"
export OCI_CLI_PROFILE=myprofile

woci --exec -- terraform init -input=false
woci --no-resign-proxy --exec -- terraform apply -input=false "$@"
