output "namespace" {
  description = "Namespace of the sie release."
  value       = helm_release.sie.namespace
}

output "release_name" {
  description = "Helm release name of sie."
  value       = helm_release.sie.name
}

output "prometheus_url" {
  description = "In-cluster URL of the Prometheus KEDA queries (the chart's prometheus.url default)."
  value       = var.install_kube_prometheus_stack ? "http://kube-prometheus-stack-prometheus.monitoring.svc:9090" : null
}

output "gateway_address_command" {
  description = "Prints the external address of the sie Gateway (routing.gateway.create) once the load balancer is up."
  value       = "kubectl -n ${helm_release.sie.namespace} get gateway ${local.fullname} -o jsonpath='{.status.addresses[0].value}'"
}

output "grafana_port_forward_command" {
  description = "Opens Grafana (dashboard 'sie — inference workers') on localhost:3000."
  value       = var.install_kube_prometheus_stack ? "kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80" : null
}

output "worker_service_prefix" {
  description = "Worker Services are <prefix>-<pool> (e.g. sie-gpu), on port 8080."
  value       = local.fullname
}
