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

variable "gpu_spot" {
  description = "Spot GPU nodes."
  type        = bool
  default     = true
}

variable "gpu_max_nodes" {
  description = "Most GPU nodes per zone."
  type        = number
  default     = 2
}
