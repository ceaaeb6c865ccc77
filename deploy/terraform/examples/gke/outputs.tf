output "image_repository" {
  description = "Where to push the images: <this>:0.1.0-cpu and <this>:0.1.0-cuda."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.sie.repository_id}/sie"
}

output "get_credentials_command" {
  description = "Points kubectl at the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.sie.name} --region ${var.region} --project ${var.project_id}"
}

output "gateway_address_command" {
  description = "Prints the address that serves queries (Envoy Gateway)."
  value       = module.platform.gateway_address_command
}

output "grafana_port_forward_command" {
  description = "Opens Grafana on localhost:3000."
  value       = module.platform.grafana_port_forward_command
}
