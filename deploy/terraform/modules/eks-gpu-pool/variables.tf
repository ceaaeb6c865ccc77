variable "cluster_name" {
  description = "Name of the existing EKS cluster."
  type        = string
}

variable "name" {
  description = "Node group name; also the value of the sie.dev/pool node label the Helm chart selects on."
  type        = string
  default     = "gpu"
  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.name))
    error_message = "name must be a lowercase label of at most 40 characters."
  }
}

variable "subnet_ids" {
  description = "Private subnets for the nodes (in zones that offer the instance types)."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must name at least one subnet."
  }
}

variable "instance_types" {
  description = "GPU instance types, most preferred first (several types make spot capacity easier to get)."
  type        = list(string)
  default     = ["g6.2xlarge", "g6.4xlarge", "g5.2xlarge"]
  validation {
    condition     = length(var.instance_types) > 0 && alltrue([for t in var.instance_types : can(regex("^(g4dn|g5|g5g|g6|g6e|gr6|p3|p4d|p4de|p5|p5e|p5en|p6-b200)\\.", t))])
    error_message = "instance_types must be NVIDIA GPU instance types (g4dn, g5, g6, g6e, gr6, p3, p4d, p5, ...)."
  }
}

variable "capacity_type" {
  description = "SPOT (cheaper, interruptible: nodes get the sie.dev/spot=true:NoSchedule taint) or ON_DEMAND."
  type        = string
  default     = "SPOT"
  validation {
    condition     = contains(["SPOT", "ON_DEMAND"], var.capacity_type)
    error_message = "capacity_type must be SPOT or ON_DEMAND."
  }
}

variable "ami_type" {
  description = "EKS-optimized AMI with the NVIDIA driver and container toolkit."
  type        = string
  default     = "AL2023_x86_64_NVIDIA"
  validation {
    condition     = contains(["AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA", "AL2023_ARM_64_NVIDIA", "BOTTLEROCKET_ARM_64_NVIDIA"], var.ami_type)
    error_message = "ami_type must be one of the EKS NVIDIA AMI types."
  }
}

variable "min_size" {
  description = "Minimum nodes. 0 lets the group scale to zero (with cluster-autoscaler's node-template tags below, or Karpenter)."
  type        = number
  default     = 0
  validation {
    condition     = var.min_size >= 0
    error_message = "min_size must be >= 0."
  }
}

variable "max_size" {
  description = "Maximum nodes."
  type        = number
  default     = 4
  validation {
    condition     = var.max_size >= 1
    error_message = "max_size must be >= 1."
  }
}

variable "desired_size" {
  description = "Initial node count (the autoscaler owns it afterwards; changes are ignored)."
  type        = number
  default     = 1
}

variable "disk_size_gb" {
  description = "Root volume size (the CUDA image alone is several GB)."
  type        = number
  default     = 100
  validation {
    condition     = var.disk_size_gb >= 50
    error_message = "disk_size_gb must be >= 50."
  }
}

variable "gpus_per_node" {
  description = "GPUs of the instance types (for cluster-autoscaler's scale-from-zero template)."
  type        = number
  default     = 1
}

variable "labels" {
  description = "Extra Kubernetes node labels."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "AWS tags for the node group and its role."
  type        = map(string)
  default     = {}
}
