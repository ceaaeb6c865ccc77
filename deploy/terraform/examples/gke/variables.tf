variable "project_id" {
  description = "An existing GCP project with billing (the APIs are enabled by this example)."
  type        = string
}

variable "region" {
  description = "Region of the cluster; its zones below must offer the GPU type (L4: e.g. us-central1-a/b/c)."
  type        = string
  default     = "us-central1"
}

variable "gpu_zones" {
  description = "Zones of the GPU node pool."
  type        = list(string)
  default     = ["us-central1-a", "us-central1-c"]
}

variable "cluster_name" {
  description = "GKE cluster name."
  type        = string
  default     = "sie"
}

variable "image_tag" {
  description = "Version tag of the images you pushed (the chart's appVersion: <tag>-cpu, <tag>-cuda)."
  type        = string
  default     = "0.1.0"
}

variable "gpu_floor_nodes" {
  description = "On-demand GPU nodes per zone that are always up (the chart's gpu pool)."
  type        = number
  default     = 1
  validation {
    condition     = var.gpu_floor_nodes >= 1
    error_message = "gpu_floor_nodes must be >= 1: a spot-only GPU pool makes every preemption an outage."
  }
}

variable "gpu_spot_max_nodes" {
  description = "Most spot GPU nodes per zone the burst pool scales to."
  type        = number
  default     = 2
}
