# The OCI provider with session-token auth. It reads ~/.oci/config (always that path) and the
# profile's `security_token_file` again for every request it signs, and woci keeps the profile's
# key pair stable across renewals, so a token renewed while `terraform apply` runs is picked up.
# The profile needs `tenancy` and `fingerprint`, which woci writes into it.

terraform {
  required_providers {
    oci = {
      source = "oracle/oci"
    }
  }
}

provider "oci" {
  auth                = "SecurityToken"
  config_file_profile = "myprofile"
  region              = "us-ashburn-1"
}
