variable "region" {
  description = "AWS region (pick one with g6 capacity, e.g. us-east-1, us-west-2)."
  type        = string
  default     = "us-west-2"
}

variable "cluster_name" {
  description = "EKS cluster name."
  type        = string
  default     = "sie"
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version (the chart needs >= 1.30)."
  type        = string
  default     = "1.33"
  validation {
    condition     = can(regex("^1\\.(3[0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must be 1.30 or newer."
  }
}

variable "gpu_floor_size" {
  description = "On-demand GPU nodes that are always up (the chart's gpu pool: one replica each)."
  type        = number
  default     = 1
  validation {
    condition     = var.gpu_floor_size >= 1
    error_message = "gpu_floor_size must be >= 1: a spot-only GPU pool makes every preemption an outage."
  }
}

variable "gpu_spot_max_size" {
  description = "Most spot GPU nodes the burst group scales to."
  type        = number
  default     = 4
}

variable "chart_versions" {
  description = "Pinned versions of the EKS-only charts (cluster_addons.tf); bump deliberately."
  type = object({
    cluster_autoscaler           = optional(string, "9.43.2")
    aws_node_termination_handler = optional(string, "0.21.0")
  })
  default = {}
}
