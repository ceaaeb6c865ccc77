variable "project_id" {
  description = "GCP project of the cluster."
  type        = string
}

variable "location" {
  description = "Region or zone of the cluster (node pools live where the cluster lives)."
  type        = string
}

variable "cluster_name" {
  description = "Name of the existing GKE Standard cluster."
  type        = string
}

variable "name" {
  description = "Node pool name; also the value of the sie.dev/pool node label the Helm chart selects on."
  type        = string
  default     = "gpu"
  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.name))
    error_message = "name must be a lowercase RFC 1035 label of at most 40 characters."
  }
}

variable "node_locations" {
  description = "Zones for the nodes (must offer the accelerator); empty = the cluster's zones."
  type        = list(string)
  default     = []
}

variable "machine_type" {
  description = "Machine type matching the accelerator (g2-standard-* for L4, a2-* for A100, a3-* for H100)."
  type        = string
  default     = "g2-standard-8"
}

variable "accelerator_type" {
  description = "GPU type, as GKE names it."
  type        = string
  default     = "nvidia-l4"
  validation {
    condition     = can(regex("^nvidia-", var.accelerator_type))
    error_message = "accelerator_type must be an NVIDIA accelerator name such as nvidia-l4, nvidia-tesla-a100 or nvidia-h100-80gb."
  }
}

variable "accelerator_count" {
  description = "GPUs per node."
  type        = number
  default     = 1
  validation {
    condition     = contains([1, 2, 4, 8], var.accelerator_count)
    error_message = "accelerator_count must be 1, 2, 4 or 8."
  }
}

variable "gpu_driver_version" {
  description = "GPU driver GKE installs: DEFAULT, LATEST, or INSTALLATION_DISABLED (bring your own driver DaemonSet)."
  type        = string
  default     = "LATEST"
  validation {
    condition     = contains(["DEFAULT", "LATEST", "INSTALLATION_DISABLED"], var.gpu_driver_version)
    error_message = "gpu_driver_version must be DEFAULT, LATEST or INSTALLATION_DISABLED."
  }
}

variable "spot" {
  description = "Spot VMs (preemptible, much cheaper). Nodes then also carry the sie.dev/spot=true:NoSchedule taint, which the chart's GPU pools tolerate."
  type        = bool
  default     = true
}

variable "min_nodes" {
  description = "Autoscaler minimum per zone. 0 lets the pool scale to zero when KEDA scales the workers to zero."
  type        = number
  default     = 0
  validation {
    condition     = var.min_nodes >= 0
    error_message = "min_nodes must be >= 0."
  }
}

variable "max_nodes" {
  description = "Autoscaler maximum per zone."
  type        = number
  default     = 4
  validation {
    condition     = var.max_nodes >= 1
    error_message = "max_nodes must be >= 1."
  }
}

variable "disk_size_gb" {
  description = "Boot disk size: holds the image (~10 GB for the CUDA image) and the node's image cache."
  type        = number
  default     = 100
  validation {
    condition     = var.disk_size_gb >= 50
    error_message = "disk_size_gb must be >= 50 (the CUDA image alone is several GB)."
  }
}

variable "service_account" {
  description = "Email of the (least-privilege) service account of the nodes."
  type        = string
}

variable "boot_disk_kms_key" {
  description = "Cloud KMS key for the boot disks (CMEK); null = Google-managed encryption."
  type        = string
  default     = null
}

variable "labels" {
  description = "Extra Kubernetes node labels."
  type        = map(string)
  default     = {}
}
