output "name" {
  description = "Node group name (the value of the sie.dev/pool node label)."
  value       = aws_eks_node_group.gpu.node_group_name
}

output "node_role_arn" {
  description = "IAM role of the nodes (add it to the cluster's access entries if you manage them yourself)."
  value       = aws_iam_role.node.arn
}

output "autoscaling_group_names" {
  description = "Auto Scaling groups behind the node group."
  value       = [for g in aws_eks_node_group.gpu.resources[0].autoscaling_groups : g.name]
}

output "node_selector" {
  description = "nodeSelector for the chart's GPU pool (workers.pools.gpu.nodeSelector)."
  value       = { "sie.dev/pool" = var.name }
}

output "tolerations" {
  description = "Tolerations the chart's GPU pool needs on these nodes (workers.pools.gpu.tolerations), besides nvidia.com/gpu which the chart adds itself."
  value       = [for t in local.node_taints : { key = t.key, operator = "Exists", effect = "NoSchedule" } if t.key != "nvidia.com/gpu"]
}
