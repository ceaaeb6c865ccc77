# An EKS managed node group of NVIDIA GPU nodes for sie workers: spot or on-demand, autoscaled (to zero by
# default), labelled for the chart's nodeSelector and tainted so only GPU workloads land there.
# The NVIDIA AMI carries the driver; the device plugin (nvidia.com/gpu) comes from the sie-platform module.
# Spot groups: EKS managed node groups turn on Capacity Rebalancing (a replacement node is started and the old
# one drained on a rebalance recommendation); the 2-minute interruption notice itself is handled by the AWS node
# termination handler (examples/eks/cluster_addons.tf).

locals {
  # nvidia.com/gpu.present=true: the NVIDIA device plugin chart's default node affinity needs it (or NFD labels,
  # which EKS nodes do not carry); without it the plugin lands nowhere and GPU pods stay Pending.
  node_labels = merge(var.labels, { "sie.dev/pool" = var.name, "nvidia.com/gpu.present" = "true" })
  node_taints = concat(
    [{ key = "nvidia.com/gpu", value = "present", effect = "NO_SCHEDULE" }],
    var.capacity_type == "SPOT" ? [{ key = "sie.dev/spot", value = "true", effect = "NO_SCHEDULE" }] : [],
  )
  # cluster-autoscaler reads these ASG tags to build a node from nothing when the group is at zero.
  autoscaler_tags = merge(
    { for k, v in local.node_labels : "k8s.io/cluster-autoscaler/node-template/label/${k}" => v },
    { for t in local.node_taints : "k8s.io/cluster-autoscaler/node-template/taint/${t.key}" => "${t.value}:NoSchedule" },
    { "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu" = tostring(var.gpus_per_node) },
  )
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name_prefix        = "${var.cluster_name}-${var.name}-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
  ])
  role       = aws_iam_role.node.name
  policy_arn = each.value
}

resource "aws_launch_template" "gpu" {
  name_prefix = "${var.cluster_name}-${var.name}-"

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.disk_size_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  # IMDSv2 only, one hop: pods cannot reach the node's instance credentials.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.cluster_name}-${var.name}" })
  }
  tags = var.tags
}

resource "aws_eks_node_group" "gpu" {
  cluster_name    = var.cluster_name
  node_group_name = var.name
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.subnet_ids
  ami_type        = var.ami_type
  capacity_type   = var.capacity_type
  instance_types  = var.instance_types
  labels          = local.node_labels

  launch_template {
    id      = aws_launch_template.gpu.id
    version = aws_launch_template.gpu.latest_version
  }

  scaling_config {
    min_size     = var.min_size
    max_size     = var.max_size
    desired_size = var.desired_size
  }

  update_config {
    max_unavailable = 1
  }

  dynamic "taint" {
    for_each = local.node_taints
    content {
      key    = taint.value.key
      value  = taint.value.value
      effect = taint.value.effect
    }
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

resource "aws_autoscaling_group_tag" "autoscaler" {
  for_each               = local.autoscaler_tags
  autoscaling_group_name = aws_eks_node_group.gpu.resources[0].autoscaling_groups[0].name
  tag {
    key                 = each.key
    value               = each.value
    propagate_at_launch = false
  }
}
