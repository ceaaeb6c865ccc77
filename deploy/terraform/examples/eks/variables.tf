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

variable "gpu_capacity_type" {
  description = "SPOT or ON_DEMAND GPU nodes."
  type        = string
  default     = "SPOT"
}

variable "gpu_max_size" {
  description = "Most GPU nodes."
  type        = number
  default     = 4
}
