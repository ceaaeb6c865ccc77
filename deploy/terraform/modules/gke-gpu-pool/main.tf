# A GKE node pool of NVIDIA GPU nodes for sie workers: spot or on-demand, autoscaled (to zero by default),
# labelled for the chart's nodeSelector and tainted so that only GPU workloads land there.
# GKE itself taints GPU nodes nvidia.com/gpu=present:NoSchedule and installs the driver (gpu_driver_version).

locals {
  node_labels = merge(var.labels, {
    "sie.dev/pool" = var.name
  })
  node_taints = concat(
    var.spot ? [{ key = "sie.dev/spot", value = "true", effect = "NO_SCHEDULE" }] : [],
  )
}

resource "google_container_node_pool" "gpu" {
  project        = var.project_id
  location       = var.location
  cluster        = var.cluster_name
  name           = var.name
  node_locations = length(var.node_locations) > 0 ? var.node_locations : null

  autoscaling {
    min_node_count  = var.min_nodes
    max_node_count  = var.max_nodes
    location_policy = var.spot ? "ANY" : "BALANCED"
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type      = var.machine_type
    spot              = var.spot
    image_type        = "COS_CONTAINERD"
    disk_size_gb      = var.disk_size_gb
    disk_type         = "pd-balanced"
    boot_disk_kms_key = var.boot_disk_kms_key
    service_account   = var.service_account
    oauth_scopes      = ["https://www.googleapis.com/auth/cloud-platform"]
    labels            = local.node_labels

    guest_accelerator {
      type  = var.accelerator_type
      count = var.accelerator_count
      gpu_driver_installation_config {
        gpu_driver_version = var.gpu_driver_version
      }
    }

    dynamic "taint" {
      for_each = local.node_taints
      content {
        key    = taint.value.key
        value  = taint.value.value
        effect = taint.value.effect
      }
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    gvnic {
      enabled = true
    }

    metadata = {
      disable-legacy-endpoints = "true"
    }
  }

  lifecycle {
    ignore_changes = [initial_node_count]
  }
}
