# Empty GCP project -> GKE cluster with a CPU system pool, an on-demand L4 GPU floor and a spot L4 burst pool
# (GKE's own cluster autoscaler scales both) -> KEDA, kube-prometheus-stack, Envoy Gateway and sie
# (values-gpu.yaml + values-gke.yaml). Walkthrough: deploy/README.md.

resource "google_project_service" "apis" {
  for_each           = toset(["container.googleapis.com", "artifactregistry.googleapis.com", "compute.googleapis.com"])
  service            = each.value
  disable_on_destroy = false
}

resource "google_artifact_registry_repository" "sie" {
  # checkov:skip=CKV_GCP_84: Google-managed encryption in the example; pass a kms_key_name for CMEK
  location      = var.region
  repository_id = "sie"
  format        = "DOCKER"
  description   = "sie images (deploy/docker)"
  depends_on    = [google_project_service.apis]
}

resource "google_service_account" "nodes" {
  account_id   = "${var.cluster_name}-nodes"
  display_name = "GKE nodes of ${var.cluster_name}"
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/artifactregistry.reader",
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_container_cluster" "sie" {
  # checkov:skip=CKV_GCP_18: the example keeps a public endpoint behind master_authorized_networks_config; narrow its range
  # checkov:skip=CKV_GCP_66: Binary Authorization needs an attestor and policy of your organisation
  # checkov:skip=CKV_GCP_65: Google Groups for RBAC needs a Workspace domain
  name     = var.cluster_name
  location = var.region

  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = false
  networking_mode          = "VPC_NATIVE"
  ip_allocation_policy {}

  release_channel {
    channel = "REGULAR"
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = "172.16.0.32/28"
  }

  master_authorized_networks_config {
    gcp_public_cidrs_access_enabled = false
    cidr_blocks {
      cidr_block   = "0.0.0.0/0"
      display_name = "replace with your office or CI range"
    }
  }

  network_policy {
    enabled = true
  }

  addons_config {
    network_policy_config {
      disabled = false
    }
  }

  enable_shielded_nodes       = true
  enable_intranode_visibility = true

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  node_config {
    service_account = google_service_account.nodes.email
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  resource_labels = { app = "sie" }

  depends_on = [google_project_service.apis]
}

# Private nodes pull images through Cloud NAT.
resource "google_compute_router" "nat" {
  name    = "${var.cluster_name}-nat"
  region  = var.region
  network = "default"
}

resource "google_compute_router_nat" "nat" {
  name                               = "${var.cluster_name}-nat"
  router                             = google_compute_router.nat.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
}

resource "google_container_node_pool" "system" {
  name     = "system"
  location = var.region
  cluster  = google_container_cluster.sie.name

  autoscaling {
    min_node_count = 1
    max_node_count = 3
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = "e2-standard-8"
    image_type      = "COS_CONTAINERD"
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    metadata = {
      disable-legacy-endpoints = "true"
    }
  }
}

# The floor: on-demand, always up (the chart's `gpu` pool), so a spot preemption never takes the last replica.
module "gpu_pool" {
  source = "../../modules/gke-gpu-pool"

  project_id       = var.project_id
  location         = var.region
  cluster_name     = google_container_cluster.sie.name
  name             = "gpu"
  node_locations   = var.gpu_zones
  machine_type     = "g2-standard-8"
  accelerator_type = "nvidia-l4"
  spot             = false
  min_nodes        = var.gpu_floor_nodes
  max_nodes        = var.gpu_floor_nodes
  service_account  = google_service_account.nodes.email
}

# The burst: spot, from zero (the chart's `gpu-spot` pool, drained within GKE's ~15 s notice).
module "gpu_spot_pool" {
  source = "../../modules/gke-gpu-pool"

  project_id       = var.project_id
  location         = var.region
  cluster_name     = google_container_cluster.sie.name
  name             = "gpu-spot"
  node_locations   = var.gpu_zones
  machine_type     = "g2-standard-8"
  accelerator_type = "nvidia-l4"
  spot             = true
  min_nodes        = 0
  max_nodes        = var.gpu_spot_max_nodes
  service_account  = google_service_account.nodes.email
}

module "platform" {
  source = "../../modules/sie-platform"

  image_repository = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.sie.repository_id}/sie"
  values_files = [
    "${path.module}/../../../helm/sie/values-gpu.yaml",
    "${path.module}/../../../helm/sie/values-gke.yaml",
  ]
  values = {
    workers = {
      pools = {
        gpu        = { nodeSelector = module.gpu_pool.node_selector }
        "gpu-spot" = { nodeSelector = module.gpu_spot_pool.node_selector }
      }
    }
  }

  depends_on = [google_container_node_pool.system, module.gpu_pool, module.gpu_spot_pool]
}
