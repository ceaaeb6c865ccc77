output "name" {
  description = "Node pool name (the value of the sie.dev/pool node label)."
  value       = google_container_node_pool.gpu.name
}

output "id" {
  description = "Node pool resource id."
  value       = google_container_node_pool.gpu.id
}

output "node_selector" {
  description = "nodeSelector for the chart's GPU pool (workers.pools.gpu.nodeSelector)."
  value = {
    "sie.dev/pool"                     = var.name
    "cloud.google.com/gke-accelerator" = var.accelerator_type
  }
}

output "tolerations" {
  description = "Tolerations the chart's GPU pool needs on these nodes (workers.pools.gpu.tolerations), besides nvidia.com/gpu which the chart adds itself."
  value       = [for t in local.node_taints : { key = t.key, operator = "Exists", effect = "NoSchedule" }]
}
