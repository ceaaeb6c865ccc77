# The cluster platform under sie, installed with helm_release: KEDA + its HTTP add-on (autoscaling on the
# workers' own metrics, scale-to-zero), kube-prometheus-stack (the Prometheus KEDA queries, the alerts, the
# Grafana that loads the dashboard ConfigMap), Envoy Gateway (model-affinity routing), optionally NVIDIA's
# device plugin, and finally the sie chart itself.

locals {
  chart_path = coalesce(var.chart_path, "${path.module}/../../../helm/sie")
  # The chart's fullname: the release name alone when it already contains "sie".
  fullname = strcontains(var.release_name, "sie") ? var.release_name : "${var.release_name}-sie"
}

resource "helm_release" "keda" {
  count            = var.install_keda ? 1 : 0
  name             = "keda"
  repository       = "https://kedacore.github.io/charts"
  chart            = "keda"
  version          = var.chart_versions.keda
  namespace        = "keda"
  create_namespace = true
  timeout          = var.timeout_seconds
}

resource "helm_release" "keda_http_add_on" {
  count            = var.install_keda ? 1 : 0
  name             = "keda-add-ons-http"
  repository       = "https://kedacore.github.io/charts"
  chart            = "keda-add-ons-http"
  version          = var.chart_versions.keda_http_add_on
  namespace        = "keda"
  create_namespace = true
  timeout          = var.timeout_seconds
  values = [yamlencode({
    interceptor = {
      # How long the interceptor holds a request while a pool scales from zero (chart default 20s: shorter
      # than a cold start that needs a new node), and how long it waits for response headers (chart
      # default 500ms: shorter than one large batch).
      replicas              = { waitTimeout = "${var.scale_from_zero_wait_seconds}s" }
      responseHeaderTimeout = "300s"
    }
  })]
  depends_on = [helm_release.keda]
}

resource "helm_release" "kube_prometheus_stack" {
  count            = var.install_kube_prometheus_stack ? 1 : 0
  name             = "kube-prometheus-stack"
  repository       = "https://prometheus-community.github.io/helm-charts"
  chart            = "kube-prometheus-stack"
  version          = var.chart_versions.kube_prometheus_stack
  namespace        = "monitoring"
  create_namespace = true
  timeout          = var.timeout_seconds
  values = [yamlencode({
    prometheus = {
      prometheusSpec = {
        # Pick up the ServiceMonitor and PrometheusRule of the sie release (other namespace, other labels).
        serviceMonitorSelectorNilUsesHelmValues = false
        ruleSelectorNilUsesHelmValues           = false
        podMonitorSelectorNilUsesHelmValues     = false
        retention                               = "15d"
      }
    }
    grafana = {
      sidecar = {
        dashboards = {
          enabled         = true
          label           = "grafana_dashboard"
          labelValue      = "1"
          searchNamespace = "ALL"
        }
      }
    }
  })]
  set_sensitive = var.grafana_admin_password == null ? [] : [{
    name  = "grafana.adminPassword"
    value = var.grafana_admin_password
  }]
}

resource "helm_release" "envoy_gateway" {
  count            = var.install_envoy_gateway ? 1 : 0
  name             = "envoy-gateway"
  repository       = "oci://docker.io/envoyproxy"
  chart            = "gateway-helm"
  version          = var.chart_versions.envoy_gateway
  namespace        = "envoy-gateway-system"
  create_namespace = true
  timeout          = var.timeout_seconds
}

resource "helm_release" "nvidia_device_plugin" {
  count            = var.install_nvidia_device_plugin ? 1 : 0
  name             = "nvidia-device-plugin"
  repository       = "https://nvidia.github.io/k8s-device-plugin"
  chart            = "nvidia-device-plugin"
  version          = var.chart_versions.nvidia_device_plugin
  namespace        = "nvidia-device-plugin"
  create_namespace = true
  timeout          = var.timeout_seconds
  values = [yamlencode({
    # Only on GPU nodes: they carry these taints and the nvidia.com/gpu.present=true label
    # (deploy/terraform/modules/eks-gpu-pool). The affinity is set here rather than left to the chart's
    # default, which also accepts NFD labels and changes between releases.
    tolerations = [
      { key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" },
      { key = "sie.dev/spot", operator = "Exists", effect = "NoSchedule" },
    ]
    affinity = {
      nodeAffinity = {
        requiredDuringSchedulingIgnoredDuringExecution = {
          nodeSelectorTerms = [{
            matchExpressions = [{ key = "nvidia.com/gpu.present", operator = "In", values = ["true"] }]
          }]
        }
      }
    }
  })]
}

resource "helm_release" "sie" {
  name             = var.release_name
  chart            = local.chart_path
  namespace        = var.namespace
  create_namespace = true
  timeout          = var.timeout_seconds
  wait             = true
  values = concat(
    [for f in var.values_files : file(f)],
    [yamlencode({ image = { repository = var.image_repository } }), yamlencode(var.values)],
  )
  depends_on = [
    helm_release.keda_http_add_on,
    helm_release.kube_prometheus_stack,
    helm_release.envoy_gateway,
    helm_release.nvidia_device_plugin,
  ]
}
