variable "namespace" {
  description = "Namespace of the sie release."
  type        = string
  default     = "sie"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label."
  }
}

variable "release_name" {
  description = "Helm release name of sie (workers are <release>-sie-<pool>)."
  type        = string
  default     = "sie"
}

variable "chart_path" {
  description = "Path to the sie chart (this repository's deploy/helm/sie by default) or an OCI/HTTP chart reference."
  type        = string
  default     = null
}

variable "values_files" {
  description = "Chart values files, layered in order, e.g. [values-gpu.yaml, values-gke.yaml] (paths)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for f in var.values_files : fileexists(f)])
    error_message = "every entry of values_files must be an existing file."
  }
}

variable "values" {
  description = "Chart values layered last (e.g. image.repository, workers.pools.gpu.nodeSelector from a node-pool module)."
  type        = any
  default     = {}
}

variable "image_repository" {
  description = "Registry path of the sie images you pushed (tags <appVersion>-cpu and <appVersion>-cuda)."
  type        = string
  validation {
    condition     = length(var.image_repository) > 0 && !can(regex(":", element(split("/", var.image_repository), length(split("/", var.image_repository)) - 1)))
    error_message = "image_repository is a repository without a tag, e.g. us-docker.pkg.dev/PROJECT/sie/sie."
  }
}

variable "install_keda" {
  description = "Install KEDA and its HTTP add-on (needed by ScaledObjects and scale-to-zero pools)."
  type        = bool
  default     = true
}

variable "install_kube_prometheus_stack" {
  description = "Install kube-prometheus-stack (Prometheus for KEDA's triggers and the alerts, Grafana for the dashboard)."
  type        = bool
  default     = true
}

variable "install_envoy_gateway" {
  description = "Install Envoy Gateway (Gateway API) for model-affinity routing (routing.mode=gateway)."
  type        = bool
  default     = true
}

variable "install_nvidia_device_plugin" {
  description = "Install NVIDIA's device plugin (EKS; GKE exposes nvidia.com/gpu itself)."
  type        = bool
  default     = false
}

variable "chart_versions" {
  description = "Pinned versions of the third-party charts. Bump deliberately: these are the versions this module was written against."
  type = object({
    keda                  = optional(string, "2.17.2")
    keda_http_add_on      = optional(string, "0.10.0")
    kube_prometheus_stack = optional(string, "75.15.1")
    envoy_gateway         = optional(string, "v1.4.2")
    nvidia_device_plugin  = optional(string, "0.17.3")
  })
  default = {}
}

variable "grafana_admin_password" {
  description = "Grafana admin password (kube-prometheus-stack). Sensitive; null keeps the chart's generated one."
  type        = string
  default     = null
  sensitive   = true
}

variable "timeout_seconds" {
  description = "How long each helm_release waits for its resources (the sie release waits for preloaded models)."
  type        = number
  default     = 900
  validation {
    condition     = var.timeout_seconds >= 60
    error_message = "timeout_seconds must be >= 60."
  }
}

variable "scale_from_zero_wait_seconds" {
  description = "How long the KEDA HTTP interceptor holds a request for a pool at zero replicas before failing it. Must cover pod start, image pull and model load (and node provisioning if the node pool is at zero too)."
  type        = number
  default     = 300
  validation {
    condition     = var.scale_from_zero_wait_seconds >= 20 && var.scale_from_zero_wait_seconds <= 3600
    error_message = "scale_from_zero_wait_seconds must be between 20 and 3600."
  }
}
