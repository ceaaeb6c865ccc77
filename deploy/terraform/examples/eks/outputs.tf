output "image_repository" {
  description = "Where to push the images: <this>:0.1.0-cpu and <this>:0.1.0-cuda."
  value       = aws_ecr_repository.sie.repository_url
}

output "update_kubeconfig_command" {
  description = "Points kubectl at the cluster."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${module.eks.cluster_name}"
}

output "gateway_address_command" {
  description = "Prints the address that serves queries (Envoy Gateway's load balancer)."
  value       = module.platform.gateway_address_command
}

output "grafana_port_forward_command" {
  description = "Opens Grafana on localhost:3000."
  value       = module.platform.grafana_port_forward_command
}
